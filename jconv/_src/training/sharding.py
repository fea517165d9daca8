"""The data-parallel mesh and the placement of host values on it.

Training runs over a 1-D mesh with axis ``"data"``: a global batch is sharded along it,
everything else (parameters, optimizer and model state, keys, counters) is replicated.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def data_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh over every device JAX sees (all processes), axis ``"data"``."""
    return Mesh(np.array(jax.devices() if devices is None else devices), ("data",))


def replicated(mesh: Mesh, value: np.ndarray) -> jax.Array:
    """A host value (the same on every process) as an array replicated over ``mesh``."""
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P()), np.asarray(value))


def key_data(mesh: Mesh, key: jax.Array | None) -> jax.Array | None:
    """A ``jax.random`` key's raw data, replicated over ``mesh`` (None stays None)."""
    return None if key is None else replicated(mesh, jax.random.key_data(key))


def batch_putter(mesh: Mesh, batch_size: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple]:
    """Turns a global batch (the same NumPy rows on every process) into arrays sharded on
    ``"data"``; each process contributes only the rows of its own devices."""
    rows = NamedSharding(mesh, P("data"))
    n_proc, pid = jax.process_count(), jax.process_index()
    lo, hi = pid * batch_size // n_proc, (pid + 1) * batch_size // n_proc

    def put(*arrays: np.ndarray) -> tuple:
        return tuple(
            jax.make_array_from_process_local_data(rows, a[lo:hi], a.shape) for a in arrays
        )

    return put
