"""Two processes on 127.0.0.1 (jax.distributed, gloo CPU collectives) through ``jconv train``.

Every child runs in its own session with a hard timeout and is killed by process group in
``finally``, so a failing test leaves nothing behind.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

ARGS = ["train", "--dataset", "digits", "--batch-size", "48", "--no-progress"]
ENV = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
CLI = [sys.executable, "-m", "jconv._src.cli"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log):
    return subprocess.Popen(CLI + args, stdout=log, stderr=subprocess.STDOUT, env=ENV,
                            start_new_session=True)


def kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def launch(tmp_path, out, extra, n=2, timeout=300, ids=None):
    """Runs processes ``ids`` (default all) of an ``n``-process job; returns (codes, logs)."""
    port, ids = free_port(), range(n) if ids is None else ids
    dist = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n)]
    logs = [tmp_path / f"{out}.p{i}.log" for i in ids]
    procs = []
    try:
        for i, log in zip(ids, logs):
            with open(log, "w") as f:
                procs.append(start(ARGS + ["--out", str(tmp_path / out)] + dist
                                   + ["--process-id", str(i)] + extra, f))
        deadline = time.monotonic() + timeout
        codes = [p.wait(timeout=max(1, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            kill(p)
    return codes, [log.read_text() for log in logs]


def history(path):
    return [json.loads(line) for line in open(path / "metrics.jsonl")]


def assert_same_metrics(a, b):
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for ra, rb in zip(a, b):
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-3, (ra, rb)
        assert abs(ra["train_acc"] - rb["train_acc"]) < 3e-3, (ra, rb)
        assert abs(ra["test_acc"] - rb["test_acc"]) < 6e-3, (ra, rb)


def test_two_processes_match_one_process_and_resume(tmp_path):
    single = subprocess.run(CLI + ARGS + ["--epochs", "2", "--out", str(tmp_path / "one")],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]

    codes, logs = launch(tmp_path, "two", ["--epochs", "2"])
    assert codes == [0, 0], logs
    assert "final test accuracy" in logs[0] and "final test accuracy" not in logs[1]
    assert "epoch   1" not in logs[1]  # only process 0 prints
    assert_same_metrics(history(tmp_path / "one"), history(tmp_path / "two"))

    # Checkpoints written by two processes restore in two processes.
    codes, logs = launch(tmp_path, "resumed", ["--epochs", "1"])
    assert codes == [0, 0], logs
    codes, logs = launch(tmp_path, "resumed", ["--epochs", "2", "--resume"])
    assert codes == [0, 0], logs
    assert "resumed from" in logs[0] and "(epoch 1)" in logs[0]
    assert sorted(os.listdir(tmp_path / "resumed" / "checkpoints")) == ["1", "2"]
    assert history(tmp_path / "resumed") == [
        {**r, "examples_per_sec": s["examples_per_sec"], "seconds": s["seconds"]}
        for r, s in zip(history(tmp_path / "two"), history(tmp_path / "resumed"))
    ]
    print("one", history(tmp_path / "one"), "two", history(tmp_path / "two"))


def test_peer_that_never_joins_is_a_clear_error_in_bounded_time(tmp_path):
    t0 = time.monotonic()
    codes, logs = launch(tmp_path, "alone", ["--epochs", "1", "--init-timeout", "5"],
                         ids=[0], timeout=120)
    assert codes == [1], logs
    assert "jconv: error: process 0 of 2 was ended by SIGABRT" in logs[0]
    assert "--init-timeout 5s" in logs[0]
    assert "    @ " not in logs[0]  # native stack frames are not shown
    assert time.monotonic() - t0 < 60


def test_peer_dying_mid_run_is_a_clear_error_in_bounded_time(tmp_path):
    port = free_port()
    dist = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--heartbeat-timeout", "10"]
    args = ARGS + ["--epochs", "100", "--out", str(tmp_path / "run")] + dist
    logs = [tmp_path / f"p{i}.log" for i in range(2)]
    procs = []
    try:
        for i in range(2):
            with open(logs[i], "w") as f:
                procs.append(start(args + ["--process-id", str(i)], f))
        deadline = time.monotonic() + 240
        while "epoch   2" not in logs[0].read_text():
            assert procs[0].poll() is None, logs[0].read_text()
            assert time.monotonic() < deadline, "process 0 never finished epoch 2"
            time.sleep(0.2)
        kill(procs[1])
        t_kill = time.monotonic()
        code = procs[0].wait(timeout=120)
        waited = time.monotonic() - t_kill
    finally:
        for p in procs:
            kill(p)
    text = logs[0].read_text()
    assert code == 1, text
    assert "jconv: error: process 0 of 2 was ended by" in text
    assert "--resume" in text
    assert waited < 60, waited
    # The job goes on from the last committed checkpoint once both processes are back (epoch 2's
    # may still have been in flight when the peer died; orbax removes its temporary folder).
    codes, logs = launch(tmp_path, "run", ["--epochs", "3", "--resume"])
    assert codes == [0, 0], logs
    assert "resumed from" in logs[0]
    assert [r["epoch"] for r in history(tmp_path / "run")] == [1, 2, 3]


@pytest.mark.parametrize("bad", [["--num-processes", "2"], ["--process-id", "2", "--num-processes", "2",
                                                          "--coordinator", "127.0.0.1:1"]])
def test_bad_distributed_flags(bad, tmp_path):
    proc = subprocess.run(CLI + ARGS + ["--out", str(tmp_path)] + bad, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "jconv: error: --" in proc.stderr
