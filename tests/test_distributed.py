"""Data-parallel training on 8 simulated CPU devices gives the one-device metrics."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, jax, jconv as jc
from jconv import data, train
ds = data.load("digits")
_, hist = train.fit(jc.models.lenet(variant="modern"), ds, train.TrainConfig(epochs=2, batch_size=48),
                    progress=False, log=lambda s: None)
print(json.dumps({"devices": jax.device_count(), "history": hist}))
"""


def run(devices):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_match_one_device():
    one, eight = run(1), run(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    for a, b in zip(one["history"], eight["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3
        assert abs(a["train_acc"] - b["train_acc"]) < 3e-3
        assert abs(a["test_acc"] - b["test_acc"]) < 6e-3
    print(one["history"], eight["history"])
