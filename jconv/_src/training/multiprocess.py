"""Start-up checks of a multi-process run: every process has the same flags and sees one folder.

Without them a misconfigured job hangs: orbax waits (ten minutes) for a folder that process 0
created where the others cannot see it, and processes with different flags wait for each
other's collectives until the heartbeat timeout. Both checks take a few seconds, through
``multihost_utils.process_allgather`` (the job's own collectives).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

_BLOB = 4096  # bytes per process in the exchange
_SHARED = "--out must be one folder that every process shares (e.g. on a shared filesystem)"


def _gather_json(value: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process's ``value`` (JSON-serialisable), in process order."""
    blob = json.dumps(value, sort_keys=True).encode()
    if len(blob) > _BLOB:
        raise ValueError(f"settings too long to compare across processes ({len(blob)} bytes)")
    buf = np.zeros(_BLOB + 4, np.uint8)
    buf[:4] = np.frombuffer(np.uint32(len(blob)).tobytes(), np.uint8)
    buf[4 : 4 + len(blob)] = np.frombuffer(blob, np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(buf))
    out = []
    for row in rows:
        n = int(np.frombuffer(row[:4].tobytes(), np.uint32)[0])
        out.append(json.loads(row[4 : 4 + n].tobytes()))
    return out


def check_same_run(settings: dict[str, Any], out: str | None, fail: Callable[[str], Exception]) -> None:
    """Raises ``fail(message)`` on every process unless all processes were started with the same
    ``settings`` (the flags that change the numbers), the same ``out`` folder, and see the files
    that process 0 writes there.

    Call it on every process, before anything else that talks to other processes.
    """
    if jax.process_count() == 1:
        return
    pid = jax.process_index()
    everyone = _gather_json({"settings": settings, "out": os.path.abspath(out) if out else None})
    for name in ["out"] + sorted(settings):
        values = [p["out"] if name == "out" else p["settings"].get(name) for p in everyone]
        if any(v != values[0] for v in values):
            has = ", ".join(f"process {i} has {v!r}" for i, v in enumerate(values))
            rule = _SHARED if name == "out" else "start every process with the same flags"
            raise fail(f"the processes disagree on --{name.replace('_', '-')}: {has}; {rule}")
    if not out:
        return
    # Process 0 writes a random token into the folder; every other process must read it back.
    probe = os.path.join(os.path.abspath(out), ".jconv-shared-folder-check")
    token, error = secrets.token_hex(8), None
    if pid == 0:
        try:
            os.makedirs(out, exist_ok=True)
            with open(probe, "w") as f:
                f.write(token)
        except OSError as e:
            error = f"process 0 cannot write to --out {out}: {e.strerror or e}"
    written = _gather_json({"token": token, "error": error})[0]
    if written["error"]:
        raise fail(written["error"])
    seen = True
    if pid != 0:
        try:
            with open(probe) as f:
                seen = f.read() == written["token"]
        except OSError:
            seen = False
    blind = [i for i, p in enumerate(_gather_json({"seen": seen})) if not p["seen"]]
    if pid == 0:
        os.remove(probe)
    if blind:
        who = f"process {blind[0]}" if len(blind) == 1 else f"processes {', '.join(map(str, blind))}"
        raise fail(f"{who} cannot see the files that process 0 "
                   f"writes in --out {os.path.abspath(out)}; {_SHARED}")
