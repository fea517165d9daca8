"""Two processes on 127.0.0.1 (jax.distributed, gloo CPU collectives) through ``jconv train``.

Every child runs in its own session with a hard timeout and is killed by process group in
``finally``, so a failing test leaves nothing behind. Runs of two processes are compared with
one-process runs as in ``test_distributed`` (one step tightly, a warm-started run with
tolerances), and bit for bit only with other two-process runs (same summation order).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.test_distributed import STEP_SCRIPT, assert_close_runs, assert_same_step, history, resumed_copy

# a constant lr: a cosine schedule (LeNet's recipe) follows --epochs, and these runs stop and resume
# with other --epochs than the reference run's
ARGS = ["train", "--dataset", "digits", "--batch-size", "48", "--schedule", "constant", "--no-progress"]
ENV = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
CLI = [sys.executable, "-m", "jconv._src.cli"]
DETERMINISTIC = ("epoch", "train_loss", "train_acc", "test_acc")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)


def kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def children(pid):
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spawn(tmp_path, name, cmds):
    logs = [tmp_path / f"{name}.p{i}.log" for i in range(len(cmds))]
    procs = []
    for cmd, log in zip(cmds, logs):
        with open(log, "w") as f:
            procs.append(start(cmd, f))
    return procs, logs


def dist_cmds(cmd, n=2, ids=None, port=None):
    port = port or free_port()
    return [cmd + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i)]
            for i in (range(n) if ids is None else ids)]


def launch(tmp_path, name, cmds, timeout=300):
    """Runs ``cmds`` side by side; returns (exit codes, logs, seconds)."""
    t0 = time.monotonic()
    procs, logs = spawn(tmp_path, name, cmds)
    try:
        deadline = t0 + timeout
        codes = [p.wait(timeout=max(1, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            kill(p)
    return codes, [log.read_text() for log in logs], time.monotonic() - t0


def train(tmp_path, out, extra, **kw):
    return launch(tmp_path, out, dist_cmds(CLI + ARGS + ["--out", str(tmp_path / out)] + extra), **kw)


def wait_for(log, text, procs, timeout=240):
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert all(p.poll() is None for p in procs), log.read_text()
        assert time.monotonic() < deadline, f"{text!r} never appeared: {log.read_text()}"
        time.sleep(0.1)


def deterministic(rows):
    return [{k: r[k] for k in DETERMINISTIC} for r in rows]


@pytest.mark.xdist_group("one-device-reference")  # shares tests/conftest.py's one_device_reference
def test_two_processes_match_one_process(one_device_reference, tmp_path):
    # (a) one step, tightly
    port = free_port()
    cmds = [[sys.executable, "-c", STEP_SCRIPT, f"127.0.0.1:{port}", "2", str(i)] for i in range(2)]
    codes, logs, _ = launch(tmp_path, "step", cmds)
    assert codes == [0, 0], logs
    two = json.loads(logs[0].strip().splitlines()[-1])
    assert two["devices"] == 2
    assert_same_step(one_device_reference["step"], two)
    # (b) a warm-started run (see test_distributed for why this regime)
    codes, logs, _ = launch(tmp_path, "two", dist_cmds(resumed_copy(one_device_reference["warm"], tmp_path / "two")))
    assert codes == [0, 0], logs
    assert "resumed from" in logs[0] and "final test accuracy" in logs[0]
    assert "final test accuracy" not in logs[1] and "epoch   2" not in logs[1]  # only process 0 prints
    assert_close_runs(one_device_reference["history"], history(tmp_path / "two"))


def test_sigterm_stops_every_process_at_one_step_and_resume_completes_the_run(tmp_path):
    slow = ["--batch-size", "16"]  # 90 steps per epoch: the signal lands inside epoch 2
    codes, logs, _ = train(tmp_path, "ref", ["--epochs", "3"] + slow)
    assert codes == [0, 0], logs
    out = tmp_path / "run"
    procs, logs = spawn(tmp_path, "run", dist_cmds(CLI + ARGS + slow + ["--out", str(out), "--epochs", "100"]))
    try:
        wait_for(logs[0], "epoch   1", procs)
        t0 = time.monotonic()
        for p in procs:  # as a scheduler would: SIGTERM to every process of the job
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=120) for p in procs]
        stopped = time.monotonic() - t0
    finally:
        for p in procs:
            kill(p)
    texts = [log.read_text() for log in logs]
    assert codes == [143, 143], texts
    assert stopped < 60, stopped
    lines = [[l for l in t.splitlines() if l.startswith("jconv: preempted")] for t in texts]
    assert all(len(l) == 1 for l in lines), texts
    assert lines[0] == lines[1]  # both processes stopped at the same step, same checkpoint
    assert "restart every process with --resume" in lines[0][0]
    step = int(lines[0][0].split(f"{out}/checkpoints/")[1].split(";")[0])
    assert 90 <= step < 3 * 90, lines
    assert str(step) in os.listdir(out / "checkpoints")
    assert not [d for d in os.listdir(out / "checkpoints") if "tmp" in d]

    codes, logs, _ = train(tmp_path, "run", ["--epochs", "3", "--resume"] + slow)
    assert codes == [0, 0], logs
    assert f"resumed from {out}/checkpoints/{step} (" in logs[0]
    # Same processes, same summation order: exactly the uninterrupted run's metrics.
    assert deterministic(history(out)) == deterministic(history(tmp_path / "ref"))


def test_second_sigterm_stops_at_once(tmp_path):
    procs, logs = spawn(tmp_path, "twice", dist_cmds(CLI + ARGS + ["--out", str(tmp_path / "run"),
                                                                  "--epochs", "100"]))
    try:
        wait_for(logs[0], "epoch   1", procs)
        workers = children(procs[0].pid)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGSTOP)  # frozen: only the second signal can end it now
        t0 = time.monotonic()
        procs[0].send_signal(signal.SIGTERM)
        time.sleep(0.5)  # two pending SIGTERMs would merge into one
        procs[0].send_signal(signal.SIGTERM)
        code = procs[0].wait(timeout=60)
        assert time.monotonic() - t0 < 10
        time.sleep(0.5)
        assert not alive(workers[0])
    finally:
        for p in procs:
            kill(p)
    text = logs[0].read_text()
    assert code == 143, text
    assert "jconv: second SIGTERM: process 0 stopped at once" in text


def test_processes_with_different_out_folders_fail_within_seconds(tmp_path):
    cmds = dist_cmds(CLI + ARGS + ["--epochs", "1"])
    cmds = [c + ["--out", str(tmp_path / f"out{i}")] for i, c in enumerate(cmds)]
    codes, logs, seconds = launch(tmp_path, "apart", cmds, timeout=120)
    assert codes == [2, 2], logs
    assert seconds < 60, seconds
    for text in logs:
        assert (f"jconv: error: the processes disagree on --out: process 0 has '{tmp_path}/out0', "
                f"process 1 has '{tmp_path}/out1'; --out must be one folder that every process "
                f"shares") in text
        assert "Traceback" not in text


def test_processes_with_different_flags_fail_within_seconds(tmp_path):
    cmds = dist_cmds(CLI + ARGS + ["--epochs", "1", "--out", str(tmp_path / "run")])
    cmds[1] += ["--lr", "0.1"]
    codes, logs, seconds = launch(tmp_path, "flags", cmds, timeout=120)
    assert codes == [2, 2], logs
    assert seconds < 60, seconds
    assert ("the processes disagree on --lr: process 0 has 0.002, process 1 has 0.1; start every "
            "process with the same flags") in logs[1]  # 0.002: LeNet's recipe


def test_out_folder_not_shared_between_processes_fails_within_seconds(tmp_path):
    """Process 1 sees its own private (tmpfs) copy of the folder, as on a host without a shared
    filesystem: same path, different folders."""
    shared = tmp_path / "shared"
    shared.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {shared}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs unshare -m and mount (root): " + probe.stderr.decode()[-200:])
    cmds = dist_cmds(CLI + ARGS + ["--epochs", "1", "--out", str(shared / "run")])
    cmds[1] = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none {shared} && exec "$0" "$@"'] + cmds[1]
    codes, logs, seconds = launch(tmp_path, "private", cmds, timeout=120)
    assert codes == [2, 2], logs
    assert seconds < 60, seconds
    for text in logs:
        assert (f"jconv: error: process 1 cannot see the files that process 0 writes in --out "
                f"{shared}/run; --out must be one folder that every process shares") in text


def test_peer_that_never_joins_is_a_clear_error_in_bounded_time(tmp_path):
    cmds = dist_cmds(CLI + ARGS + ["--epochs", "1", "--init-timeout", "5", "--out", str(tmp_path)], ids=[0])
    codes, logs, seconds = launch(tmp_path, "alone", cmds, timeout=120)
    assert codes == [1], logs
    assert "jconv: error: process 0 of 2 was ended by SIGABRT" in logs[0]
    assert "--init-timeout 5s" in logs[0]
    assert "    @ " not in logs[0]  # native stack frames are not shown
    assert seconds < 60


def test_peer_dying_mid_run_is_a_clear_error_in_bounded_time_and_leaves_no_orphan(tmp_path):
    cmd = CLI + ARGS + ["--epochs", "100", "--out", str(tmp_path / "run"), "--heartbeat-timeout", "10"]
    procs, logs = spawn(tmp_path, "dying", dist_cmds(cmd))
    try:
        wait_for(logs[0], "epoch   2", procs)
        workers = children(procs[1].pid)
        assert len(workers) == 1
        procs[1].kill()  # SIGKILL to process 1's supervisor only: its worker must go with it
        t_kill = time.monotonic()
        time.sleep(1)
        assert not alive(workers[0]), "the worker outlived its supervisor"
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
    codes, logs, _ = train(tmp_path, "run", ["--epochs", "3", "--resume"])
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
