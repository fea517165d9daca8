"""The model zoo: each model builds, runs (train and eval mode), and has the parameter count of
the same network written in PyTorch (d2l's PyTorch code, with the same small-input stems)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc
from jconv._src.models.zoo import MODELS, build
from jconv.models import from_torch
from tests.d2l_torch import networks


NAMES = ["alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_28x28_stems_equal_pytorchs_layer_by_layer(torch, name):
    """At 1x28x28 every zoo network has the parameter count of d2l's PyTorch network with the
    same small-input stem, and its weights port layer by layer (kind, shape, bias all match)."""
    make, shape = networks(torch, small=True)[name]
    tnet, net = make(), build(name, 10, shape)
    params, state = from_torch(net, tnet)
    assert sum(a.size for a in jax.tree.leaves(params)) == sum(p.numel() for p in tnet.parameters())
    theirs = {k: v for k, v in tnet.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    assert sum(a.size for a in jax.tree.leaves(state)) == sum(v.numel() for v in theirs.values())


@pytest.mark.parametrize("name", NAMES)
def test_model_builds_and_runs(name):
    net = getattr(jc.models, name)(num_classes=7)
    x = jax.random.uniform(jax.random.key(1), (2, 1, 28, 28))
    params, state = net.init_with_state(jax.random.key(0), (1, 1, 28, 28))

    @jax.jit  # one compile: a training-mode step, then evaluation with the state it left
    def train_then_eval(p, s, x, k):
        y, new = net.apply_with_state(p, s, x, train=True, key=k)
        return y, new, net.apply_with_state(p, new, x)[0]

    y, new, y_eval = train_then_eval(params, state, x, jax.random.key(2))
    assert y.shape == (2, 7) == net.output_shape((2, 1, 28, 28)) and bool(jnp.all(jnp.isfinite(y)))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert y_eval.shape == (2, 7) and bool(jnp.all(jnp.isfinite(y_eval)))


def test_input_shape_option_gives_d2ls_networks():
    """At d2l's sizes the d2l stems come back (224 for AlexNet/NiN, 96 for DenseNet)."""
    a = jc.models.alexnet(input_shape=(1, 224, 224))
    assert a.layers[0].kernel_size == (11, 11) and a.layers[0].strides == (4, 4)
    assert jc.models.alexnet().layers[0].kernel_size == (3, 3)
    assert jc.models.nin(input_shape=(3, 224, 224)).layers[0].layers[0].kernel_size == (11, 11)
    assert len(jc.models.densenet(input_shape=(1, 96, 96)).layers[0].layers) == 4  # with the max pool
    assert len(jc.models.densenet().layers[0].layers) == 3
    assert jc.models.resnet18(num_classes=5, input_shape=(3, 96, 96)).output_shape((1, 3, 96, 96)) == (1, 5)
    with pytest.raises(ValueError, match=r"resnet18: `input_shape` must be \(channels, height, width\)"):
        jc.models.resnet18(input_shape=(28, 28))
    with pytest.raises(ValueError, match=r"googlenet: `num_classes` must be >= 1"):
        jc.models.googlenet(num_classes=0)
    with pytest.raises(ValueError, match=r"alexnet: input_shape \(1, 8, 8\) is too small"):
        jc.models.alexnet(input_shape=(1, 8, 8))


def _leaves(layer):
    from jconv import nn

    if isinstance(layer, nn.Sequential):
        return [l for c in layer.layers for l in _leaves(c)]
    if isinstance(layer, nn.Concat):
        return [l for c in layer.branches for l in _leaves(c)]
    if isinstance(layer, nn.Residual):
        return _leaves(layer.body) + (_leaves(layer.shortcut) if layer.shortcut is not None else [])
    return [layer]


@pytest.mark.parametrize("name", ["vgg11", "nin", "googlenet"])
def test_relu_networks_without_batchnorm_default_to_he_init(name):
    from jconv import nn
    from jconv._src.models import nin as nin_lib

    weighted = lambda net: [l for l in _leaves(net) if isinstance(l, (nn.Conv2D, nn.Dense))]  # noqa: E731
    plain = {"head_bias": None} if name == "nin" else {}  # NiN's last convolution starts at zero (below)
    he = nin_lib.HE_CENTERED if name == "nin" else nn.he_normal  # NiN's filters start zero-sum (below)
    assert all(l.weight_init is he for l in weighted(getattr(jc.models, name)(**plain)))
    d2l = getattr(jc.models, name)(weight_init=nn.xavier_uniform, **plain)
    assert all(l.weight_init is nn.xavier_uniform for l in weighted(d2l))
    assert all(l.weight_init is None for l in weighted(jc.models.alexnet()))  # Xavier (d2l's) measured better
    if name == "nin":
        *rest, last = weighted(jc.models.nin(weight_init=nn.xavier_uniform))
        assert all(l.weight_init is nn.xavier_uniform for l in rest) and last.weight_init is not nn.xavier_uniform
        from jconv._src.models import zoo  # --init xavier (d2l's recipe) is d2l's initialisation throughout
        assert zoo.build("nin", 10, (1, 28, 28), init="xavier") == jc.models.nin(weight_init=nn.xavier_uniform,
                                                                                 head_bias=None)


@pytest.mark.parametrize("init", ["he", "xavier"])
def test_nin_starts_with_every_class_alive(init):
    """NiN's class scores are ReLU outputs of ReLU outputs: with d2l's zero biases some classes
    score 0 on every image at initialisation (no gradient); the default head starts them all near 1,
    with small weights through which the body gets a gradient from the first step."""
    from jconv import nn

    x = jax.random.uniform(jax.random.key(1), (64, 1, 28, 28))
    weight_init = {"he": nn.he_normal, "xavier": nn.xavier_uniform}[init]
    dead = []
    for head_bias in (None, 1.0):
        net = jc.models.nin(weight_init=weight_init, head_bias=head_bias)
        init, apply = jax.jit(net.init, static_argnums=1), jax.jit(net.apply)  # one compile for 4 seeds
        counts = []
        for seed in range(4):
            params = init(jax.random.key(seed), (1, 1, 28, 28))
            counts.append(int(jnp.sum(jnp.max(apply(params, x), axis=0) == 0)))
        dead.append(counts)
    assert sum(dead[0]) > 0 and dead[1] == [0, 0, 0, 0], dead
    net = jc.models.nin()
    params = jax.jit(net.init, static_argnums=1)(jax.random.key(0), (1, 1, 28, 28))
    y = jax.jit(net.apply)(params, x)
    np.testing.assert_allclose(y, 1.0, atol=0.1)  # every score near 1 for every image: a near-uniform softmax
    assert float(jnp.std(y)) > 1e-4  # not all equal
    head = params[-3][-1]
    assert float(jnp.std(head["weight"])) == pytest.approx(0.01, rel=0.2) and np.all(head["bias"] == 1.0)
    grads = jax.jit(jax.grad(lambda p: -jnp.mean(jax.nn.log_softmax(net.apply(p, x))[:, 0])))(params)
    assert float(jnp.max(jnp.abs(grads[0][0]["weight"]))) > 0  # the first convolution learns at step 0


def test_nin_default_init_leaves_no_channel_dead_on_digits():
    """Every layer of NiN sees inputs >= 0 (pixels, ReLU outputs): with plain He filters some
    channels are negative on every digit from the start; the default zero-sum filters leave none."""
    from jconv import data, nn

    x = jnp.asarray(data.load("mnist5k").x_train[:64])
    net = jc.models.nin()

    @jax.jit  # the dead channels of each of the 12 ReLU convolutions (one compile: the layers' weights differ)
    def dead_channels(params):
        h, out = x, []
        for layer, p in zip(net.layers, params):
            if isinstance(layer, nn.Dropout):
                continue
            if isinstance(layer, nn.Sequential):  # a NiN block: three ReLU convolutions
                for conv, cp in zip(layer.layers, p):
                    h = conv.apply(cp, h)
                    out.append(jnp.sum(jnp.max(h, axis=(0, 2, 3)) == 0))
            else:
                h = layer.apply(p, h)
        return jnp.stack(out)

    def dead(model):
        return [int(c) for c in dead_channels(model.init(jax.random.key(0), (1, 1, 28, 28)))]

    assert sum(dead(jc.models.nin(weight_init=nn.he_normal))) > 0
    assert dead(net) == [0] * 12


@pytest.mark.parametrize("shape", [(7, 3, 5, 5), (10, 20), (4, 2, 3), (6, 4, 1, 2, 3)])
def test_initializers_equal_jaxs_variance_scaling(shape):
    """He and Xavier draw over the flattened shape (faster to compile): the values are jax's."""
    from jconv import nn

    for ours, args in [(nn.xavier_uniform, (1.0, "fan_avg", "uniform")), (nn.he_normal, (2.0, "fan_in", "normal"))]:
        theirs = jax.nn.initializers.variance_scaling(*args, in_axis=1, out_axis=0)
        np.testing.assert_array_equal(ours(jax.random.key(3), shape, jnp.float32),
                                      theirs(jax.random.key(3), shape, jnp.float32))


def test_he_normal_has_kaimings_scale():
    from jconv import nn

    w = nn.he_normal(jax.random.key(0), (256, 64, 3, 3), jnp.float32)  # fan in 576
    assert abs(float(w.std()) - (2 / 576) ** 0.5) < 0.02 * (2 / 576) ** 0.5
