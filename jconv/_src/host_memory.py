"""Host memory for XLA:CPU's programs: freed memory kept for the next step (glibc only).

XLA:CPU allocates each run's temporary buffer afresh (ResNet-18 at batch 128: 77 MB per train step)
and frees it at the end. glibc serves an allocation that large with ``mmap`` and unmaps it when
freed (always from the per-thread arenas XLA's worker threads allocate in), so every step
page-faults the whole buffer in again: 18,460 minor faults and ~40 ms of kernel time per ResNet-18
step on 2 cores, measured. :func:`keep_freed_memory` tells glibc to serve every thread from the main
heap without ``mmap`` and to return freed memory to the system only beyond 1 GiB at the heap's top,
so the next step reuses the pages: no faults, 0.94-0.99x PyTorch's ResNet-18 step against 1.02-1.04x
(``BENCHMARKS.md``).

It runs once, when ``import jconv`` imports this module (first), before JAX starts its threads (a
thread keeps the arena it first allocated in). ``JCONV_MALLOC=system`` leaves glibc's defaults, as does any ``MALLOC_*`` or
``GLIBC_TUNABLES`` setting of your own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings

ENV_VAR = "JCONV_MALLOC"

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8

#: Freed memory at the heap's top beyond this goes back to the system (a large array freed for good).
TRIM_THRESHOLD = 1 << 30

_state = {"detail": "not configured"}


def _user_configured() -> str | None:
    """The variable by which the user chose glibc's malloc behaviour, if any."""
    if os.environ.get(ENV_VAR, "").strip().lower() == "system":
        return f"{ENV_VAR}=system"
    for name in os.environ:
        if name.startswith("MALLOC_") or (name == "GLIBC_TUNABLES" and "malloc" in os.environ[name]):
            return name
    return None


def keep_freed_memory() -> str:
    """Configures glibc's malloc as the module says, once; returns what was done (for logs).
    Never raises: where there is no glibc (macOS, Windows, musl) or the user chose, it does nothing
    (a bad ``JCONV_MALLOC`` warns)."""
    if _state["detail"] != "not configured":
        return _state["detail"]
    value = os.environ.get(ENV_VAR, "").strip().lower()
    chosen = _user_configured()
    if value not in ("", "system", "keep"):
        warnings.warn(f"jconv: {ENV_VAR} must be 'keep', 'system' or unset, got {os.environ[ENV_VAR]!r}; "
                      "leaving glibc's malloc as it is", stacklevel=2)
        _state["detail"] = f"glibc's malloc as it is (bad {ENV_VAR})"
    elif chosen:
        _state["detail"] = f"glibc's malloc as configured ({chosen})"
    elif not sys.platform.startswith("linux"):
        _state["detail"] = "the system's malloc (not Linux)"
    else:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc
            _state["detail"] = "the system's malloc (no glibc mallopt)"
        else:
            ok = all(mallopt(p, v) == 1 for p, v in (
                (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
            _state["detail"] = ("glibc malloc: one arena, no mmap, freed memory kept up to 1 GiB ("
                                f"{ENV_VAR}=system: glibc's defaults)") if ok else "glibc's malloc (mallopt refused)"
    return _state["detail"]


keep_freed_memory()
