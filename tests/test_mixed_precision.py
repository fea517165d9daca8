"""Mixed precision: bfloat16 activations with float32 parameters, loss and sums."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc
from jconv import data, nn, train


def test_bfloat16_training_is_close_to_float32_and_keeps_float32_parameters():
    ds = data.load("digits")
    runs = {}
    for dtype in ("float32", "bfloat16"):
        # Adam (LeNet's recipe): well conditioned from the first step. SGD at lr 0.05 first sits on the
        # ln(10) plateau, and when it escapes depends on rounding: epoch 3's loss of bfloat16 and float32
        # runs differed by < 0.1 on a Zen 3 EPYC and by 0.12-0.14 on a Zen 1; with Adam, by ~1e-5.
        cfg = train.TrainConfig(epochs=3, batch_size=48, dtype=dtype, optimizer="adam", lr=2e-3)
        params, hist = train.fit(jc.models.lenet(variant="modern"), ds, cfg, progress=False, log=lambda s: None)
        assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
        runs[dtype] = hist
    f32, bf16 = runs["float32"][-1], runs["bfloat16"][-1]
    assert bf16["test_acc"] > 0.85 and abs(bf16["test_acc"] - f32["test_acc"]) < 0.06, (f32, bf16)
    assert abs(bf16["train_loss"] - f32["train_loss"]) < 0.1, (f32, bf16)


def test_the_compute_dtype_reaches_every_layer_and_the_loss_is_float32():
    model = nn.Sequential(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.AvgPool2D(2),
                          nn.Dropout(0.2), nn.Dense(10))
    params, state = model.init_with_state(jax.random.key(0), (1, 1, 28, 28))
    batch = (jnp.ones((4, 1, 28, 28)), jnp.zeros(4, jnp.int32), jnp.ones(4))
    jaxpr = str(jax.make_jaxpr(lambda p: train.loss_and_metrics(model, p, batch, state, dtype=jnp.bfloat16))(params))
    assert "bf16[4,8,28,28]" in jaxpr and "bf16[4,8,14,14]" in jaxpr  # the activations
    loss, _ = train.loss_and_metrics(model, params, batch, state, dtype=jnp.bfloat16)
    assert loss.dtype == jnp.float32
    grads = jax.grad(lambda p: train.loss_and_metrics(model, p, batch, state, train=True, key=jax.random.key(1),
                                                      dtype=jnp.bfloat16)[0])(params)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def test_average_pooling_sums_bfloat16_in_float32():
    x = jnp.full((1, 1, 64, 64), 0.1, jnp.bfloat16)  # a bfloat16 running sum stalls near 32
    expected = jnp.asarray(0.1, jnp.bfloat16)
    for y in (jc.avg_pool2d(x, 64), jc.global_avg_pool2d(x), jc.adaptive_avg_pool2d(x, 1)):
        assert y.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(y, np.float32).ravel(), [float(expected)])


def test_unknown_dtype_is_refused():
    with pytest.raises(train.TrainingError, match=r"--dtype must be one of \('float32', 'bfloat16'\), got 'float8'"):
        train.fit(jc.models.lenet(), data.load("digits"), train.TrainConfig(dtype="float8"), progress=False)
