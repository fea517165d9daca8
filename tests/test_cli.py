"""A newcomer's mistakes on the command line: each gets one clear line and the right exit code."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from jconv import data, train
from jconv._src import cli as cli_lib
from jconv._src.training.guards import check_divergence as _check_divergence


def cli(*args, timeout=600):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-m", "jconv._src.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _error_line(proc):
    lines = [l for l in proc.stderr.splitlines() if l.startswith("jconv: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def _entry(help_text, flag):
    """The help entry of ``flag`` (its line in the options list and the indented ones after it)."""
    start = help_text.index("\n  " + flag) + 1
    block = help_text[start:].split("\n  -")[0]
    return " ".join(block.split())


def test_every_flag_has_a_description_and_shows_its_default():
    parser = cli_lib._parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("train", "bench"):
        for action in subs.choices[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings} has no description"
    text = cli("train", "--help").stdout
    for flag, default in (("--epochs", "10"), ("--model", "lenet"), ("--dataset", "mnist5k"),
                          ("--weight-decay", "0.0"), ("--seed", "0"), ("--data-dir", "data"),
                          ("--dtype", "float32"),
                          ("--init-timeout", "60"), ("--heartbeat-timeout", "20")):
        assert f"(default: {default})" in _entry(text, flag), (flag, _entry(text, flag))
    for flag in ("--batch-size", "--lr", "--momentum", "--out"):  # model-dependent: the help says
        assert "default" in _entry(text, flag), flag
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "--overwrite" in text and "--no-progress" in text and "examples:" in text


def test_unwritable_out_is_one_line_before_any_data_is_loaded(tmp_path):
    # --dataset mnist with an empty --data-dir would fail on the data: the folder is checked first.
    proc = cli("train", "--out", "/proc/forbidden/run", "--dataset", "mnist", "--data-dir", str(tmp_path))
    assert proc.returncode == 2
    line = _error_line(proc)
    assert line.startswith("jconv: error: cannot write to the output folder /proc/forbidden/run: "), line
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable")
        proc = cli("train", "--out", str(ro / "run"), "--dataset", "digits")
        assert proc.returncode == 2 and "Permission denied" in _error_line(proc)
    finally:
        ro.chmod(0o700)


def test_a_folder_holding_another_run_needs_resume_or_overwrite_and_resume_needs_more_epochs(tmp_path):
    out = tmp_path / "r"
    first = cli("train", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr
    (out / "notes.txt").write_text("mine")
    before = sorted(os.listdir(out / "checkpoints"))
    assert len(before) == 2
    other = cli("train", "--dataset", "digits", "--epochs", "1", "--seed", "5", "--out", str(out), "--no-progress")
    assert other.returncode == 2
    line = _error_line(other)
    assert f"the output folder {out} holds another run (checkpoints after" in line
    assert "2 epochs in metrics.jsonl); pass --resume to continue it, --overwrite to replace it" in line
    assert sorted(os.listdir(out / "checkpoints")) == before  # nothing was touched
    both = cli("train", "--dataset", "digits", "--out", str(out), "--resume", "--overwrite")
    assert both.returncode == 2 and "give one of them" in _error_line(both)

    # --resume with fewer epochs than done, and with as many
    fewer = cli("train", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--resume", "--no-progress")
    assert fewer.returncode == 2
    line = _error_line(fewer)
    assert "has already trained 2 epochs; nothing to do for --epochs 1" in line and "--epochs 3 or more" in line
    same = cli("train", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--resume", "--no-progress")
    assert same.returncode == 0 and "already trained 2 epochs; nothing to do" in same.stdout
    assert "epoch   1" not in same.stdout and "epoch   2" not in same.stdout  # no training happened

    new = cli("train", "--dataset", "digits", "--epochs", "1", "--seed", "5", "--out", str(out), "--no-progress",
              "--overwrite")
    assert new.returncode == 0, new.stderr
    assert "after 1 epoch;" in new.stdout  # not "1 epochs"
    assert len(os.listdir(out / "checkpoints")) == 1 and (out / "notes.txt").read_text() == "mine"
    rows = [json.loads(l) for l in open(out / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1]


def test_an_exploding_but_finite_loss_stops_the_run(tmp_path):
    # mnist5k at lr 50: the first epoch's mean loss is ~1e13, finite (digits would reach NaN).
    proc = cli("train", "--epochs", "2", "--lr", "50", "--out", str(tmp_path / "r"), "--no-progress")
    assert proc.returncode == 2
    line = _error_line(proc)
    assert "the training loss diverged (mean" in line and "more than 10x the first step's" in line, line
    assert "in epoch 1: stopping (try a smaller --lr than 50)" in line
    assert "test acc" not in proc.stdout  # stopped before evaluating or checkpointing the epoch
    assert not os.listdir(tmp_path / "r" / "checkpoints")


@pytest.mark.parametrize("loss, first, raises", [
    (2.0, 2.3, False), (22.9, 2.3, False), (23.1, 2.3, True), (float("nan"), 2.3, True), (float("inf"), 2.3, True),
])
def test_divergence_rule(loss, first, raises):
    assert train.DIVERGENCE_FACTOR == 10.0
    if raises:
        with pytest.raises(train.TrainingError, match="in epoch 1: stopping"):
            _check_divergence(loss, first, 1, 0.1, None)
    else:
        _check_divergence(loss, first, 1, 0.1, None)


def test_a_failed_download_leaves_no_empty_folder(tmp_path, monkeypatch):
    import urllib.request

    def offline(url, filename):
        open(filename, "wb").write(b"partial")  # a download that breaks off half-way
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    root = tmp_path / "data"
    with pytest.raises(data.DataError, match="downloading .* failed: network unreachable"):
        data.mnist(str(root), download=True)
    assert not root.exists()
    existing = tmp_path / "mine" / "mnist"
    existing.mkdir(parents=True)
    with pytest.raises(data.DataError):
        data.mnist(str(tmp_path / "mine"), download=True)
    assert existing.is_dir() and not os.listdir(existing)  # the user's folder stays; no .part left


def test_a_run_on_the_loss_plateau_is_named_and_fails_with_fail_on_plateau(tmp_path, monkeypatch, capsys):
    """``jconv train`` end to end on a network that cannot leave ln(10): zero weights make every
    score equal (loss ln(10) exactly) and lr 1e-9 keeps them so for the epoch. The run names the
    plateau in one line (exit 0), fails with exit 2 under --fail-on-plateau, and a run that learns
    (the same network at lr 0.05) is not named."""
    import jax

    from jconv import nn
    from jconv._src import cli

    flat = lambda name, n, shape, **kw: nn.Sequential(  # noqa: E731
        nn.Flatten(), nn.Dense(n, weight_init=jax.nn.initializers.zeros), input_shape=shape)
    monkeypatch.setattr(cli, "build", flat)
    args = ["train", "--dataset", "digits", "--epochs", "1", "--no-progress"]
    assert cli.main(args + ["--lr", "1e-9", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    line = ("warning: lenet is on the loss plateau: every step of epoch 1 stayed within 2% of ln(10) = 2.303 at "
            "lr 1e-09; try the model's recipe")
    assert sum(line in l for l in out.splitlines()) == 1, out
    assert cli.main(args + ["--lr", "1e-9", "--fail-on-plateau", "--out", str(tmp_path / "b")]) == 2
    captured = capsys.readouterr()
    assert "jconv: error: lenet is on the loss plateau: every step of epoch 1" in captured.err
    assert "Traceback" not in captured.err and "final test accuracy" not in captured.out
    assert cli.main(args + ["--fail-on-plateau", "--out", str(tmp_path / "c")]) == 0
    assert "on the loss plateau" not in capsys.readouterr().out
