"""The training package's parts: the output folder is checked once per run, the optimizer comes
from the config (schedule and weight decay plug in), and each model's defaults live in one table."""

import numpy as np
import optax
import pytest

from jconv import train
from jconv._src import cli as cli_lib
from jconv._src.training import run_dir


def test_jconv_train_checks_the_output_folder_once(tmp_path, monkeypatch):
    calls = []
    real = run_dir.check_output

    def counting(out, **kw):
        calls.append((out, kw))
        return real(out, **kw)

    monkeypatch.setattr(run_dir, "check_output", counting)
    out = tmp_path / "run"
    code = cli_lib.main(["train", "--dataset", "digits", "--epochs", "1", "--batch-size", "200",
                         "--out", str(out), "--no-progress"])
    assert code == 0
    assert calls == [(str(out), {"resume": False, "overwrite": False})]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_fit_checks_a_plain_path_and_rechecks_a_folder_checked_for_other_flags(tmp_path, monkeypatch):
    calls = []
    real = run_dir.check_output
    monkeypatch.setattr(run_dir, "check_output", lambda out, **kw: calls.append(kw) or real(out, **kw))
    checked = run_dir.check_output(str(tmp_path), resume=False, overwrite=False)
    assert isinstance(checked, train.RunDir) and checked.path == str(tmp_path)
    calls.clear()
    assert run_dir.open_run(checked, {}, resume=False, overwrite=False) == checked and calls == []
    run_dir.open_run(checked, {}, resume=True, overwrite=False)  # checked for another mode: again
    run_dir.open_run(str(tmp_path), {}, resume=False, overwrite=False)
    assert calls == [{"resume": True, "overwrite": False}, {"resume": False, "overwrite": False}]


def test_the_optimizer_follows_the_config_schedule_and_decay():
    const = train.TrainConfig(lr=0.1, epochs=4)
    assert train.learning_rate(const, 10) == 0.1
    cos = train.TrainConfig(lr=0.1, epochs=4, schedule="cosine", warmup_epochs=1)
    sched = train.learning_rate(cos, 10)
    lrs = np.array([float(sched(i)) for i in range(41)])
    assert lrs[0] == 0 and lrs[5] == pytest.approx(0.05) and lrs[10] == pytest.approx(0.1)
    assert np.all(np.diff(lrs[10:]) <= 1e-9) and lrs[40] == pytest.approx(0.0, abs=1e-9)
    assert lrs[25] == pytest.approx(0.05, rel=1e-5)  # half-way through the decay: half the peak

    # SGD with decay and momentum equals optax's own chain, step for step.
    opt = train.optimizer_for(train.TrainConfig(lr=0.1, momentum=0.9, weight_decay=1e-3, epochs=4,
                                                schedule="cosine", warmup_epochs=1), 10)
    ref = optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(sched, momentum=0.9))
    p = {"w": np.ones(3, np.float32)}
    s, r = opt.init(p), ref.init(p)
    for i in range(12):
        g = {"w": np.full(3, i + 1.0, np.float32)}
        u, s = opt.update(g, s, p)
        v, r = ref.update(g, r, p)
        np.testing.assert_allclose(u["w"], v["w"], rtol=1e-6)


def test_the_cosine_schedule_ends_at_its_floor_and_a_bad_floor_is_refused():
    cfg = train.TrainConfig(lr=0.2, epochs=4, schedule="cosine", warmup_epochs=1, final_lr_ratio=0.1)
    sched = train.learning_rate(cfg, 10)
    lrs = np.array([float(sched(i)) for i in range(41)])
    assert lrs[0] == 0 and lrs[10] == pytest.approx(0.2) and lrs[40] == pytest.approx(0.02)
    assert np.all(np.diff(lrs[10:]) <= 1e-9) and lrs[25] == pytest.approx(0.11, rel=1e-5)  # half-way: the mean
    args = cli_lib._parser().parse_args(["train", "--model", "nin", "--final-lr-ratio", "0.25"])
    assert args.final_lr_ratio == 0.25
    for bad in (-0.1, 1.5):
        with pytest.raises(train.TrainingError, match=rf"--final-lr-ratio must be in \[0, 1\], got {bad}"):
            train.fit(None, None, train.TrainConfig(final_lr_ratio=bad), progress=False)


def test_every_cli_model_has_its_defaults_in_the_one_table():
    from jconv._src.models.zoo import MODELS

    assert set(train.RECIPES) == set(MODELS)
    for name in MODELS:
        d = train.model_defaults(name)
        assert set(d) >= {"lr", "batch_size", "momentum", "epochs", "schedule", "weight_decay"}
        train.TrainConfig(model=name, **d)  # every entry is a TrainConfig field


def test_recipes_d2l_and_flags_override_the_recipe():
    d2l = train.recipe("alexnet", "d2l")
    assert (d2l["optimizer"], d2l["lr"], d2l["momentum"], d2l["batch_size"], d2l["epochs"], d2l["init"]) == (
        "sgd", 0.01, 0.0, 128, 10, "xavier")
    assert train.recipe("resnet18")["schedule"] == "cosine" and train.recipe("lenet-classic")["schedule"] == "constant"
    with pytest.raises(ValueError, match=r"recipe: `name` must be one of \('jconv', 'd2l'\), got 'book'"):
        train.recipe("lenet", "book")


def test_cli_recipe_d2l_with_resize(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", "--dataset", "digits", "--model", "lenet-classic", "--recipe", "d2l", "--resize", "32",
                "--epochs", "1", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    bad = _cli("train", "--resize", "0", "--out", str(tmp_path / "r"))
    assert bad.returncode == 2 and "--resize must be >= 1, got 0" in bad.stderr


def test_the_plateau_is_every_step_within_two_percent_of_chance():
    from jconv._src.training.guards import plateau, plateau_message

    chance = np.log(10)
    assert plateau([[chance * 64 * 1.01, 6, 64], [chance * 40 * 0.99, 4, 40]], 10)
    assert not plateau([[chance * 64 * 1.01, 6, 64], [chance * 64 * 0.9, 9, 64]], 10)
    line = plateau_message("nin", 2, 0.01, 10)
    assert line.startswith("nin is on the loss plateau: every step of epoch 2 stayed within 2% of ln(10) = 2.303")
    assert "at lr 0.01; try" in line


def test_resize_runs_inside_the_network(tmp_path):
    from jconv._src.models.zoo import build

    net = build("lenet", 10, (1, 8, 8), resize=28)
    assert net.output_shape((2, 1, 8, 8)) == (2, 10) and repr(net.layers[0]) == "Lambda(resize to 28x28)"


def test_lr_find_suggests_an_lr_inside_the_sweep_and_saves_its_plot(tmp_path):
    proc = _cli("lr-find", "--dataset", "digits", "--steps", "30", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("suggested lr ") and "(the recipe's peak lr: 0.002)" in line
    lr = float(line.split()[2])
    assert 1e-5 <= lr <= 1.0 and (tmp_path / "lr_find.png").stat().st_size > 1000
    from jconv._src.training.lr_find import _steepest

    lrs = np.geomspace(1e-4, 1, 50)
    loss = 2.3 - 2 / (1 + np.exp(-(np.log10(lrs) + 2) * 4))  # falls fastest at lr 1e-2, then flat
    loss[40:] = 10.0  # blows up
    assert _steepest(lrs, loss) == pytest.approx(1e-2, rel=0.25)
    flat = 2.3 + 0.02 * np.random.default_rng(0).standard_normal(50)  # a sweep that never left ln(10)
    assert _steepest(lrs, flat) is None


def test_lr_find_without_a_descent_says_so_and_plots_no_suggestion(tmp_path, monkeypatch, capsys):
    from jconv._src.training import lr_find

    lrs, flat = np.geomspace(1e-5, 1, 20), np.full(20, np.log(10.0))
    monkeypatch.setattr(lr_find, "lr_find", lambda *a, **k: lr_find.LrFind(lrs, flat, flat, None))
    assert cli_lib.main(["lr-find", "--dataset", "digits", "--out", str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("no suggestion: the loss did not fall 5% below its start (2.3) at any lr") and \
        "(try more --steps; the recipe's peak lr: 0.002)" in line
    assert (tmp_path / "lr_find.png").stat().st_size > 1000


def _cli(*args):
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-m", "jconv._src.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env)
