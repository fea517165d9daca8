"""Turns an abort of JAX's distributed runtime into a one-line error.

When a peer never joins (``initialization_timeout``) or stops sending heartbeats, JAX's
coordination client ends the process with ``LOG(FATAL)``: SIGABRT and a native stack trace,
out of reach of any Python ``try``. ``jconv train --coordinator ...`` therefore runs the
training in a child process (the same command, marked by ``JCONV_WORKER``), relays its output
without the native stack frames, and, if the child is killed by a signal, says what happened and
what to do. The runtime itself is JAX's; this only watches it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from typing import Sequence

WORKER_ENV = "JCONV_WORKER"
_NATIVE_FRAME = re.compile(rb"^\s+@\s+0x[0-9a-f]+|^\*\*\* Check failure stack trace")


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def run_worker(argv: Sequence[str], *, process_id: int, num_processes: int, init_timeout: int,
               heartbeat_timeout: int, out: str) -> int:
    """Runs ``python -m jconv._src.cli *argv`` as a child; returns its exit code, or 1 with an
    explanation when the distributed runtime (or anyone) killed it with a signal."""
    env = dict(os.environ, **{WORKER_ENV: "1"})
    child = subprocess.Popen([sys.executable, "-m", "jconv._src.cli", *argv], env=env,
                             stderr=subprocess.PIPE)
    forward = lambda signum, _frame: child.send_signal(signum)  # noqa: E731
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    hidden = 0
    try:
        assert child.stderr is not None
        for line in iter(child.stderr.readline, b""):
            if _NATIVE_FRAME.match(line):
                hidden += 1
                continue
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
        rc = child.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if child.poll() is None:
            child.kill()
            child.wait()
    if rc >= 0:
        return rc
    name = signal.Signals(-rc).name
    note = f" ({hidden} native stack frames hidden)" if hidden else ""
    print(
        f"jconv: error: process {process_id} of {num_processes} was ended by {name}{note}. "
        f"If the lines above come from JAX's distributed runtime, a peer did not join within "
        f"--init-timeout {init_timeout}s or stopped answering for --heartbeat-timeout "
        f"{heartbeat_timeout}s; start every process again, adding --resume to continue from "
        f"the last good checkpoint in {out}/checkpoints",
        file=sys.stderr,
    )
    return 1
