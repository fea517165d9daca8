"""Watches a multi-process worker: turns an abort of JAX's distributed runtime into a one-line
error, relays signals, and leaves no orphan.

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
from typing import Any, Callable, Sequence

WORKER_ENV = "JCONV_WORKER"
_NATIVE_FRAME = re.compile(rb"^\s+@\s+0x[0-9a-f]+|^\*\*\* Check failure stack trace")


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when the supervisor dies (Linux's
    ``PR_SET_PDEATHSIG``), so that a supervisor killed by SIGKILL leaves no orphan."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here, not in the forked child
    return lambda: prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def run_worker(argv: Sequence[str], *, process_id: int, num_processes: int, init_timeout: int,
               heartbeat_timeout: int, out: str) -> int:
    """Runs ``python -m jconv._src.cli *argv`` as a child; returns its exit code, or 1 with an
    explanation when the distributed runtime (or anyone) killed it with a signal.

    The child runs in its own session, so signals meant for the job reach it once, through
    here: the first SIGTERM or SIGINT is passed on as SIGTERM (the child stops at a step that
    every process agrees on and commits a checkpoint); a second one kills the child at once.
    """
    env = dict(os.environ, **{WORKER_ENV: "1"})
    child = subprocess.Popen([sys.executable, "-m", "jconv._src.cli", *argv], env=env,
                             stderr=subprocess.PIPE, start_new_session=True,
                             preexec_fn=_die_with_parent())
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            child.send_signal(signal.SIGTERM)
        else:
            child.kill()

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
    if len(received) > 1:
        name = signal.Signals(received[-1]).name
        print(f"jconv: second {name}: process {process_id} stopped at once; the last committed "
              f"checkpoint in {out}/checkpoints is kept (restart every process with --resume)",
              file=sys.stderr)
        return 128 + received[-1]
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
