"""The training package's parts: the output folder is checked once per run, the optimizer comes
from the config (schedule and weight decay plug in), and each model's defaults live in one table."""

import json

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


def test_every_cli_model_has_its_defaults_in_the_one_table():
    from jconv._src.models.zoo import MODELS

    assert set(train.MODEL_DEFAULTS) <= set(MODELS)
    for name in MODELS:
        d = train.model_defaults(name)
        assert set(d) >= {"lr", "batch_size", "momentum", "epochs", "schedule", "weight_decay"}
        train.TrainConfig(model=name, **d)  # every entry is a TrainConfig field
