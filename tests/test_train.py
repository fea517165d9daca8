"""Training: learning, determinism, resume (also after SIGKILL), checkpoints, data, CLI."""

import gzip
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc
from jconv import data, train

DETERMINISTIC = ("epoch", "train_loss", "train_acc", "test_acc")


def same_metrics(a, b):
    return [{k: r[k] for k in DETERMINISTIC} for r in a] == [{k: r[k] for k in DETERMINISTIC} for r in b]


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "jconv._src.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def test_mnist5k_two_epochs_far_above_chance():
    ds = data.load("mnist5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    _, hist = train.fit(jc.models.lenet(variant="modern"), ds, train.TrainConfig(epochs=2), progress=False)
    assert hist[-1]["test_acc"] > 0.85
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_same_seed_same_metrics_and_resume_equals_uninterrupted(tmp_path, digits):
    model = jc.models.lenet(variant="modern")
    cfg = train.TrainConfig(epochs=3, batch_size=50)
    _, full = train.fit(model, digits, cfg, str(tmp_path / "a"), progress=False)
    _, again = train.fit(model, digits, cfg, None, progress=False)
    assert same_metrics(full, again)
    train.fit(model, digits, train.TrainConfig(epochs=1, batch_size=50), str(tmp_path / "b"), progress=False)
    _, resumed = train.fit(model, digits, cfg, str(tmp_path / "b"), resume=True, progress=False)
    assert same_metrics(full, resumed)
    rows = [json.loads(l) for l in open(tmp_path / "b" / "metrics.jsonl")]
    assert same_metrics(rows, full) and set(rows[0]) >= {"epoch", "train_loss", "train_acc", "test_acc", "examples_per_sec"}
    assert (tmp_path / "b" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    _, other_seed = train.fit(model, digits, train.TrainConfig(epochs=1, batch_size=50, seed=1), None, progress=False)
    assert other_seed[0]["train_loss"] != full[0]["train_loss"]


def test_resume_with_other_settings_is_refused(tmp_path, digits):
    model = jc.models.lenet(variant="modern")
    train.fit(model, digits, train.TrainConfig(epochs=1, batch_size=50), str(tmp_path), progress=False)
    with pytest.raises(train.TrainingError, match=r"written with \{'lr': 0.05\}; resume with the same flags"):
        train.fit(model, digits, train.TrainConfig(epochs=2, batch_size=50, lr=0.1), str(tmp_path), resume=True, progress=False)


def test_one_compilation_for_the_partial_last_batch(digits, caplog):
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            train.fit(jc.models.lenet(variant="modern"), digits, train.TrainConfig(epochs=3, batch_size=100), progress=False)
    finally:
        jax.config.update("jax_log_compiles", False)
    assert len(digits.y_train) % 100 != 0
    compiles = [r.getMessage() for r in caplog.records if "Finished XLA compilation of jit(train_step)" in r.getMessage()]
    assert len(compiles) == 1, compiles


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, digits):
    cfg = train.TrainConfig(epochs=3, batch_size=50, lr=1e9)
    with pytest.raises(train.TrainingError, match=r"non-finite training loss \(nan\) in epoch 1: stopping"):
        train.fit(jc.models.lenet(variant="modern"), digits, cfg, str(tmp_path), progress=False)


def test_batch_size_must_divide_devices(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-m", "jconv._src.cli", "train", "--dataset", "digits",
                           "--batch-size", "7", "--out", str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "jconv: error: --batch-size 7 is not divisible by the 2 devices of the data mesh" in proc.stderr


def _corrupt(step_dir):
    for root, _, files in os.walk(step_dir):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"\x00garbage")


def test_corrupt_newest_checkpoint_is_skipped_or_refused(tmp_path):
    out = str(tmp_path / "run")
    # a constant lr: a cosine schedule (LeNet's recipe) follows --epochs, so a run that --resume
    # extends from 2 to 3 epochs is not the run planned for 3 from the start
    args = ["train", "--dataset", "digits", "--batch-size", "50", "--schedule", "constant", "--no-progress",
            "--out", out]
    ref = cli(*args, "--epochs", "3", "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    assert cli(*args, "--epochs", "2").returncode == 0
    steps = 29  # ceil(1437 / 50) per epoch: checkpoints are named by steps done
    assert sorted(os.listdir(os.path.join(out, "checkpoints")), key=int) == [str(steps), str(2 * steps)]
    _corrupt(os.path.join(out, "checkpoints", str(2 * steps)))
    proc = cli(*args, "--epochs", "3", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"skipping unreadable checkpoint {os.path.abspath(out)}/checkpoints/{2 * steps}" in proc.stdout
    assert f"resumed from {os.path.abspath(out)}/checkpoints/{steps} (end of epoch 1)" in proc.stdout
    load = lambda d: [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
    assert same_metrics(load(out), load(str(tmp_path / "ref")))
    for step in os.listdir(os.path.join(out, "checkpoints")):
        _corrupt(os.path.join(out, "checkpoints", step))
    proc = cli(*args, "--epochs", "4", "--resume")
    assert proc.returncode == 2
    assert "jconv: error: no usable checkpoint in" in proc.stderr and "Traceback" not in proc.stderr


def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_metrics(tmp_path):
    args = ["train", "--dataset", "digits", "--batch-size", "50", "--epochs", "4", "--no-progress"]
    ref = cli(*args, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    expected = [json.loads(l) for l in open(tmp_path / "ref" / "metrics.jsonl")]
    rng = np.random.default_rng(0)
    for trial in range(2):
        out = str(tmp_path / f"run{trial}")
        proc = subprocess.Popen([sys.executable, "-m", "jconv._src.cli", *args, "--out", out],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # wait for the first epoch line, then kill at a random moment of the later ones
            proc.stdout.readline()
            time.sleep(float(rng.uniform(0.0, 1.5)))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
        resumed = cli(*args, "--out", out, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        got = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
        assert same_metrics(got, expected)


def _write_idx(path, array):
    dtype_code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + payload)


def test_idx_reader_and_idx_datasets(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 12).astype(np.uint8)
    _write_idx(str(tmp_path / "plain.idx"), imgs)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "plain.idx")), imgs)
    ints = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    _write_idx(str(tmp_path / "ints.idx.gz"), ints)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "ints.idx.gz")), ints)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(str(tmp_path / "bad.idx"))
    (tmp_path / "short.idx").write_bytes((tmp_path / "plain.idx").read_bytes()[:-5])
    with pytest.raises(data.DataError, match="payload is"):
        data.read_idx(str(tmp_path / "short.idx"))

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    from jconv._src.data import IDX_FILES
    for name, arr in zip(IDX_FILES, (imgs, labels, imgs[:4], labels[:4])):
        _write_idx(str(folder / name), arr)
    ds = data.fashion_mnist(str(tmp_path))
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(ds.x_train[:, 0] * 255, imgs, atol=1e-4)
    with pytest.raises(data.DataError, match=r"mnist: missing train-images-idx3-ubyte.gz.*--download"):
        data.mnist(str(tmp_path))


def test_cli_help_bad_flags_and_a_one_epoch_run(tmp_path):
    assert cli("--help").returncode == 0
    h = cli("train", "--help")
    assert h.returncode == 0 and "--resume" in h.stdout and "--coordinator" in h.stdout
    bad = cli("train", "--dataset", "cifar")
    assert bad.returncode == 2 and "choose from 'mnist5k', 'digits', 'mnist', 'fashion-mnist'" in bad.stderr
    bad = cli("train", "--model", "vgg")
    assert bad.returncode == 2 and "'lenet'" in bad.stderr
    bad = cli("train", "--epochs", "0")
    assert bad.returncode == 2 and "--epochs must be >= 1, got 0" in bad.stderr
    bad = cli("train", "--dataset", "mnist", "--data-dir", str(tmp_path))
    assert bad.returncode == 2 and "put the four IDX files" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli("train", "--dataset", "digits", "--lr", "1e9", "--out", str(tmp_path / "nan"), "--no-progress")
    assert bad.returncode == 2 and "non-finite training loss" in bad.stderr
    out = tmp_path / "one"
    ok = cli("train", "--dataset", "digits", "--epochs", "1", "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "epoch   1" in ok.stdout and "final test accuracy" in ok.stdout
    assert (out / "metrics.jsonl").exists() and (out / "curves.png").exists()
    assert os.listdir(out / "checkpoints")


def _wait_in_file(path, pattern, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, open(path, errors="replace").read()):
        assert proc.poll() is None, open(path).read()[-2000:]
        assert time.monotonic() < deadline, f"{pattern} never appeared"
        time.sleep(0.02)


def test_sigterm_mid_epoch_commits_a_checkpoint_and_resume_equals_uninterrupted(tmp_path):
    # batch 8: 180 steps per epoch, long enough to signal in the middle of epoch 2
    args = ["train", "--dataset", "digits", "--batch-size", "8", "--lr", "0.01", "--epochs", "3"]
    ref = cli(*args, "--no-progress", "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out, err = tmp_path / "run", tmp_path / "run.err"
    with open(err, "w") as f:  # the progress bar (on stderr) tells where the run is
        proc = subprocess.Popen([sys.executable, "-m", "jconv._src.cli", *args, "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=f, text=True)
    try:
        _wait_in_file(err, r"epoch 2/3: +[1-9]\d%", proc)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    text = open(err).read()
    assert proc.returncode == 143, text[-2000:]
    found = re.search(r"jconv: preempted \(SIGTERM\) at epoch 2 step (\d+); checkpoint in "
                      r"(\S+)/(\d+); restart every process with --resume", text)
    assert found, text[-2000:]
    step, ckdir, done = int(found[1]), found[2], int(found[3])
    assert 0 < step < 180 and done == 180 + step and ckdir == str(out / "checkpoints")
    assert sorted(os.listdir(ckdir), key=int) == ["180", str(done)]  # committed, no temporary folder
    assert "epoch   2" not in stdout
    resumed = cli(*args, "--no-progress", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {ckdir}/{done} (epoch 2, step {step} of 180)" in resumed.stdout
    load = lambda d: [json.loads(l) for l in open(d / "metrics.jsonl")]
    assert same_metrics(load(out), load(tmp_path / "ref"))


WATCH_SCRIPT = """
import os, signal, sys, time
from jconv._src.training.preemption import PreemptionWatch
with PreemptionWatch() as watch:
    assert not watch.reached(0)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(0.2)
    assert watch.reached(1) and watch.signal_name == sys.argv[1], watch.signal_name
    print("first signal noted", flush=True)
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    time.sleep(30)
print("not stopped")
"""


@pytest.mark.parametrize("first, second, code", [("SIGTERM", "SIGINT", 130), ("SIGINT", "SIGTERM", 143)])
def test_first_signal_is_noted_and_a_second_one_stops_at_once(first, second, code):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WATCH_SCRIPT, first, second], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == code, proc.stderr
    assert time.monotonic() - t0 < 25
    assert proc.stdout == "first signal noted\n"
    assert f"jconv: second {second}: stopping at once" in proc.stderr


def test_fit_without_out_is_preempted_cleanly(digits):
    """``fit`` from Python: the signal raises ``Preempted`` (nothing to save without ``out``) and
    the previous handlers are back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    before = signal.getsignal(signal.SIGTERM)

    def log(line):  # the signal arrives while epoch 2 is about to start
        if line.startswith("epoch   1"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(train.Preempted, match=r"preempted \(SIGTERM\) at the start of epoch 2; no checkpoint"):
        train.fit(jc.models.lenet(variant="modern"), digits, train.TrainConfig(epochs=1000, batch_size=50),
                  progress=False, log=log)
    assert signal.getsignal(signal.SIGTERM) is before


def _small_bn_dropout_net():
    from jconv import nn

    return nn.Sequential(
        nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
        nn.Residual(nn.Sequential(nn.Conv2D(8, 3, padding=1), nn.BatchNorm()), activation="relu"),
        nn.MaxPool2D(2), nn.Flatten(), nn.Dropout(0.3), nn.Dense(10),
    )


def test_fit_with_batchnorm_and_dropout_learns_checkpoints_state_and_resumes_exactly(tmp_path, digits):
    net = _small_bn_dropout_net()
    cfg = train.TrainConfig(epochs=3, batch_size=50, lr=0.005)
    _, full = train.fit(net, digits, cfg, str(tmp_path / "a"), progress=False)
    assert full[-1]["test_acc"] > 0.5 and full[-1]["train_loss"] < full[0]["train_loss"]
    _, again = train.fit(net, digits, cfg, None, progress=False)
    assert same_metrics(full, again)  # dropout masks and batch statistics are reproducible
    train.fit(net, digits, train.TrainConfig(epochs=1, batch_size=50, lr=0.005), str(tmp_path / "b"), progress=False)
    _, resumed = train.fit(net, digits, cfg, str(tmp_path / "b"), resume=True, progress=False)
    assert same_metrics(full, resumed)  # the running statistics came back from the checkpoint
    import orbax.checkpoint as ocp

    step = max(int(d) for d in os.listdir(tmp_path / "b" / "checkpoints"))
    with ocp.CheckpointManager(str(tmp_path / "b" / "checkpoints")) as mgr:
        saved = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    assert "model_state" in saved
    running = saved["model_state"][1]["running_var"]
    assert running.shape == (8,) and not np.allclose(running, 1.0)


def test_apply_on_a_model_with_state_names_apply_with_state():
    net = _small_bn_dropout_net()
    params = net.init(jax.random.key(0), (1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"apply_with_state"):
        net.apply(params, jnp.ones((2, 1, 28, 28)))


def test_cli_trains_a_model_with_state(tmp_path):
    out = tmp_path / "bn"  # BN-LeNet: BatchNorm state through the CLI at a small compile (the zoo's
    # larger networks train through examples/modern_cnns.py in test_examples)
    proc = cli("train", "--model", "bn-lenet", "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
               "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1" in proc.stdout and (out / "metrics.jsonl").exists()
    h = cli("train", "--help")
    assert "resnet18: sgd lr 0.05 (cosine, 1 warmup), batch 128, wd 0.0005" in " ".join(h.stdout.split())


def test_device_resident_pipeline_sees_the_same_batches_and_resumes_exactly(tmp_path, digits):
    """The device pipeline (data on the devices, epochs as compiled scans of steps) against the
    host pipeline: the same batches, so epoch 1 agrees to rounding (later epochs follow the
    plateau escape's amplification, so they are compared within one pipeline only); a resumed
    device run, mid-epoch included, equals an uninterrupted one exactly."""
    model = jc.models.lenet(variant="modern")
    cfg = train.TrainConfig(epochs=2, batch_size=50)  # 29 steps per epoch: a partial last chunk
    _, host = train.fit(model, digits, train.TrainConfig(epochs=1, batch_size=50), None, progress=False,
                        input_pipeline="host")
    _, dev = train.fit(model, digits, cfg, str(tmp_path / "a"), progress=False, input_pipeline="device")
    assert abs(host[0]["train_loss"] - dev[0]["train_loss"]) < 1e-4 and abs(host[0]["test_acc"] - dev[0]["test_acc"]) < 0.01
    train.fit(model, digits, train.TrainConfig(epochs=1, batch_size=50), str(tmp_path / "b"), progress=False,
              input_pipeline="device")
    _, resumed = train.fit(model, digits, cfg, str(tmp_path / "b"), resume=True, progress=False, input_pipeline="device")
    assert same_metrics(resumed, dev)

    def log(line):  # preempted after the first chunk of epoch 2 (a mid-epoch checkpoint)
        if line.startswith("epoch   1"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(train.Preempted):
        train.fit(model, digits, cfg, str(tmp_path / "c"), progress=False, log=log, input_pipeline="device")
    _, after = train.fit(model, digits, cfg, str(tmp_path / "c"), resume=True, progress=False, input_pipeline="device")
    assert same_metrics(after, dev)


def test_device_chunk_equals_host_steps_with_batchnorm_and_dropout(digits):
    """Three steps of a BatchNorm + Dropout net as one compiled chunk against three host steps
    (same batches, same dropout keys): losses and parameters agree to float32 rounding."""
    net = _small_bn_dropout_net()
    mesh, opt, n, b = train.data_mesh(), train.make_optimizer(0.05, 0.9), len(digits.y_train), 48
    params0, state0 = net.init_with_state(jax.random.key(0), (1, 1, 28, 28))
    key = jax.random.key(7)
    order = train.device_epoch_order(mesh, jax.random.key(1), n, b)
    np.testing.assert_array_equal(np.asarray(order)[:n], data.epoch_order(jax.random.key(1), n))
    step, put = train.make_train_step(net, opt, mesh), train.batch_putter(mesh, b)
    p, o, s, host = jax.tree.map(jnp.copy, params0), opt.init(params0), jax.tree.map(jnp.copy, state0), []
    for i in range(3):
        idx = np.asarray(order)[i * b:(i + 1) * b]
        p, o, m, s = step(p, o, put(digits.x_train[idx], digits.y_train[idx], np.ones(b, np.float32)), s,
                          jax.random.fold_in(key, i))
        host.append(float(m.loss_sum))
    chunk = train.make_train_chunk(net, opt, mesh, n, b)
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    p2, _, s2, ms = chunk(jax.tree.map(jnp.copy, params0), opt.init(params0), jax.tree.map(jnp.copy, state0), x, y,
                          order, 0, 0, key, 3)
    np.testing.assert_allclose(np.asarray(ms.loss_sum), host, rtol=1e-5)
    for a, c in zip(jax.tree.leaves((p, s)), jax.tree.leaves((p2, s2))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-4, atol=1e-4)
