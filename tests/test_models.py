"""The model zoo: each model builds, runs (train and eval mode), and has the parameter count of
the same network written in PyTorch (d2l's PyTorch code, with the same small-input stems)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc


def torch_models(torch, num_classes=10):
    """d2l's PyTorch models for 1x28x28 input, with the stems jconv uses at that size."""
    tnn = torch.nn

    def conv(i, o, k, s=1, p=0, relu=True):
        return [tnn.Conv2d(i, o, k, s, p)] + ([tnn.ReLU()] if relu else [])

    alexnet = tnn.Sequential(
        *conv(1, 96, 3, 1, 1), tnn.MaxPool2d(3, 2), *conv(96, 256, 5, p=2), tnn.MaxPool2d(3, 2),
        *conv(256, 384, 3, p=1), *conv(384, 384, 3, p=1), *conv(384, 256, 3, p=1), tnn.MaxPool2d(3, 2),
        tnn.Flatten(), tnn.LazyLinear(4096), tnn.ReLU(), tnn.Dropout(0.5), tnn.Linear(4096, 4096), tnn.ReLU(),
        tnn.Dropout(0.5), tnn.Linear(4096, num_classes))

    layers, c = [], 1
    for i, (n, o) in enumerate(((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))):
        for _ in range(n):
            layers += conv(c, o, 3, p=1)
            c = o
        if i < 4:  # 28 -> 14 -> 7 -> 3 -> 1: the fifth pool is left out
            layers.append(tnn.MaxPool2d(2, 2))
    vgg = tnn.Sequential(*layers, tnn.Flatten(), tnn.LazyLinear(4096), tnn.ReLU(), tnn.Dropout(0.5),
                         tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(0.5), tnn.Linear(4096, num_classes))

    def nin_block(i, o, k, s, p):
        return tnn.Sequential(*conv(i, o, k, s, p), *conv(o, o, 1), *conv(o, o, 1))

    nin = tnn.Sequential(nin_block(1, 96, 3, 1, 1), tnn.MaxPool2d(3, 2), nin_block(96, 256, 5, 1, 2),
                         tnn.MaxPool2d(3, 2), nin_block(256, 384, 3, 1, 1), tnn.MaxPool2d(3, 2), tnn.Dropout(0.5),
                         nin_block(384, num_classes, 3, 1, 1), tnn.AdaptiveAvgPool2d(1), tnn.Flatten())

    class Inception(tnn.Module):
        def __init__(self, i, c1, c2, c3, c4):
            super().__init__()
            self.b1 = tnn.Conv2d(i, c1, 1)
            self.b2 = tnn.Sequential(tnn.Conv2d(i, c2[0], 1), tnn.Conv2d(c2[0], c2[1], 3, padding=1))
            self.b3 = tnn.Sequential(tnn.Conv2d(i, c3[0], 1), tnn.Conv2d(c3[0], c3[1], 5, padding=2))
            self.b4 = tnn.Sequential(tnn.MaxPool2d(3, 1, 1), tnn.Conv2d(i, c4, 1))

    pool = lambda: tnn.MaxPool2d(3, 2, 1)  # noqa: E731
    googlenet = tnn.Sequential(
        tnn.Conv2d(1, 64, 7, 2, 3), pool(), tnn.Conv2d(64, 64, 1), tnn.Conv2d(64, 192, 3, padding=1), pool(),
        Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64), pool(),
        Inception(480, 192, (96, 208), (16, 48), 64), Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64), Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128), pool(),
        Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128),
        tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(1024, num_classes))

    class Residual(tnn.Module):
        def __init__(self, i, o, use_1x1conv=False, strides=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(i, o, 3, strides, 1)
            self.conv2 = tnn.Conv2d(o, o, 3, padding=1)
            self.conv3 = tnn.Conv2d(i, o, 1, strides) if use_1x1conv else None
            self.bn1, self.bn2 = tnn.BatchNorm2d(o), tnn.BatchNorm2d(o)

    def stage(i, o, n, first=False):
        return [Residual(i if j == 0 else o, o, j == 0 and not first, 2 if j == 0 and not first else 1)
                for j in range(n)]

    resnet = tnn.Sequential(tnn.Conv2d(1, 64, 7, 2, 3), tnn.BatchNorm2d(64), tnn.ReLU(), pool(),
                            *stage(64, 64, 2, True), *stage(64, 128, 2), *stage(128, 256, 2), *stage(256, 512, 2),
                            tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(512, num_classes))

    blocks, c = [tnn.Conv2d(1, 64, 7, 2, 3), tnn.BatchNorm2d(64), tnn.ReLU()], 64  # no stem pool at 28x28
    for i in range(4):
        for _ in range(4):
            blocks += [tnn.BatchNorm2d(c), tnn.Conv2d(c, 32, 3, padding=1)]
            c += 32
        if i != 3:
            blocks += [tnn.BatchNorm2d(c), tnn.Conv2d(c, c // 2, 1)]
            c //= 2
    densenet = tnn.Sequential(*blocks, tnn.BatchNorm2d(c), tnn.Flatten(), tnn.Linear(c, num_classes))

    return {"alexnet": alexnet, "vgg11": vgg, "nin": nin, "googlenet": googlenet, "resnet18": resnet,
            "densenet": densenet}


NAMES = ["alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet"]


def test_parameter_counts_equal_pytorch(torch):
    ours = {name: getattr(jc.models, name)() for name in NAMES}
    theirs = torch_models(torch)
    theirs["alexnet"](torch.zeros(1, 1, 28, 28))  # sizes the lazy dense layers
    theirs["vgg11"](torch.zeros(1, 1, 28, 28))
    for name in NAMES:
        params = jax.eval_shape(lambda k: ours[name].init(k, (1, 1, 28, 28)), jax.random.key(0))
        count = sum(a.size for a in jax.tree.leaves(params))
        assert count == sum(p.numel() for p in theirs[name].parameters()), name


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

    weighted = lambda net: [l for l in _leaves(net) if isinstance(l, (nn.Conv2D, nn.Dense))]  # noqa: E731
    plain = {"head_bias": None} if name == "nin" else {}  # NiN's last convolution starts at zero (below)
    assert all(l.weight_init is nn.he_normal for l in weighted(getattr(jc.models, name)(**plain)))
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
    score 0 on every image at initialisation (no gradient); the default head starts them all at 1."""
    from jconv import nn

    x = jax.random.uniform(jax.random.key(1), (64, 1, 28, 28))
    weight_init = {"he": nn.he_normal, "xavier": nn.xavier_uniform}[init]
    dead = []
    for head_bias in (None, 1.0):
        net = jc.models.nin(weight_init=weight_init, head_bias=head_bias)
        counts = []
        for seed in range(4):
            params, state = net.init_with_state(jax.random.key(seed), (1, 1, 28, 28))
            counts.append(int(jnp.sum(jnp.max(jax.jit(net.apply)(params, x), axis=0) == 0)))
        dead.append(counts)
    assert sum(dead[0]) > 0 and dead[1] == [0, 0, 0, 0], dead
    y = jax.jit(jc.models.nin().apply)(jc.models.nin().init(jax.random.key(0), (1, 1, 28, 28)), x)
    np.testing.assert_allclose(y, 1.0)  # every score 1 for every image: a uniform softmax


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
