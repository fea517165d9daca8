"""Strict settings for every test (as Equinox's and JAX's own suites do)."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
