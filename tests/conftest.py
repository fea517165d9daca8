"""Strict settings for every test (as Equinox's and JAX's own suites do), and the settings that
let the suite run unchanged on CPU, GPU and TPU:

* test processes (and the subprocesses they start) allocate accelerator memory on demand instead
  of each preallocating 75% of it (``pytest -n 2`` runs two processes, plus CLI subprocesses);
* numeric comparisons assume float32 arithmetic: matmuls and convolutions run at
  ``jax_default_matmul_precision="highest"`` (NVIDIA GPUs default to TF32 and TPUs to bf16
  passes, which no float32 tolerance here is meant to absorb; ``test_transforms.py`` covers the
  lower precisions explicitly);
* XLA's GPU kernels are asked to be deterministic (``--xla_gpu_deterministic_ops``), so that the
  same-run comparisons hold there too; other backends ignore the flag;
* the ``jconv train`` subprocesses that the tests start share one JAX compilation cache, made for
  this run and removed after it: ~40 of them compile the same LeNet-on-digits programs, and a
  cached executable is the one XLA compiled, so their results are unchanged (the test processes
  themselves compile as users do, without it).
"""

import os
import shutil
import subprocess
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "--xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()

import jax  # noqa: E402
import pytest
from hypothesis import HealthCheck, settings

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first test process (pytest-xdist's controller)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE = tempfile.mkdtemp(prefix="jconv-tests-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
else:
    _CACHE = None
jax.config.update("jax_compilation_cache_dir", None)  # inherited by the subprocesses only

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def torch():
    t = _torch()
    if t is None:
        pytest.skip("PyTorch is not installed: install torch==2.13.0 (CPU) to run the oracle tests")
    return t


def _cpu_conv_backends():
    from jconv._src import onednn

    return ["onednn", "xla"] if onednn.cpu_conv_backend() == "onednn" else ["xla"]


@pytest.fixture(params=_cpu_conv_backends())
def cpu_conv(request):
    """Runs a test under each CPU convolution backend available (oneDNN where built, and XLA's):
    the convolution oracle tests take it, so the suite checks both backends in one run."""
    from jconv._src import onednn

    with onednn.use(request.param):
        yield request.param


@pytest.fixture(scope="session")
def one_device_reference(tmp_path_factory):
    """What ``test_distributed`` and ``test_multiprocess`` compare with, computed once per test
    process (both modules are one ``xdist_group``): one training step on one device, a one-device
    warm start (a checkpoint after epoch 1) and the one-device run resumed from it."""
    from tests.test_distributed import ENV_ONE, history, one_step, resumed_copy, warm_start

    tmp = tmp_path_factory.mktemp("one-device")
    step, warm = one_step(1), warm_start(tmp)
    proc = subprocess.run(resumed_copy(warm, tmp / "one"), env=ENV_ONE, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout
    return {"step": step, "warm": warm, "history": history(tmp / "one")}


def pytest_unconfigure(config):
    if _CACHE:
        shutil.rmtree(_CACHE, ignore_errors=True)
