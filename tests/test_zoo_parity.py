"""Every zoo network equals d2l's PyTorch network at d2l's input size: weights ported with
``jconv.models.from_torch``, then eval-mode logits, train-mode logits and BatchNorm statistics
(float32), and the gradients of the input and the first layer's weight (float64; float32 gradients
through many max pools differ where near-ties flip with rounding) are compared."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jconv import nn
from jconv._src.models.zoo import MODELS, build
from jconv.models import from_torch
from tests.d2l_torch import networks

BN_NETS = {"bn-lenet", "resnet18", "resnext", "regnet", "densenet"}


def _pair(torch, name):
    """(jconv net, torch net with random weights and BatchNorm statistics, input shape)."""
    make, shape = networks(torch)[name]
    torch.manual_seed(0)
    tnet = make()
    with torch.no_grad():
        for m in tnet.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    return build(name, 10, shape), tnet, shape


def test_every_cli_model_has_a_d2l_oracle(torch):
    assert set(networks(torch)) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_logits_statistics_and_gradients_equal_d2ls_pytorch(torch, name):
    net, tnet, shape = _pair(torch, name)
    params, state = from_torch(net, tnet)
    x = np.random.default_rng(1).uniform(size=(2,) + shape).astype(np.float32)
    scale = lambda a: 1e-4 * max(1.0, float(np.abs(a).max()))  # noqa: E731

    tnet.eval()
    with torch.no_grad():
        want = tnet(torch.from_numpy(x)).numpy()
    got, _ = jax.jit(lambda p, s, x: net.apply_with_state(p, s, x))(params, state, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=scale(want), err_msg=f"{name}: eval logits")

    train = name in BN_NETS  # their train mode is deterministic (no Dropout): batch statistics
    if train:
        tnet.train()
        with torch.no_grad():
            want = tnet(torch.from_numpy(x)).numpy()
        got, new_state = jax.jit(lambda p, s, x: net.apply_with_state(p, s, x, train=True))(params, state, x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=scale(want), err_msg=f"{name}: train logits")
        _, want_state = from_torch(net, tnet)
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(want_state)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{name}: running statistics")

    # float64 gradients of <logits, g> with respect to the input and the first convolution's weight.
    tnet = tnet.double().train(train)
    g = np.random.default_rng(2).normal(size=(2, 10))
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    first = next(m for m in tnet.modules() if isinstance(m, torch.nn.Conv2d))
    (tnet(tx) * torch.from_numpy(g)).sum().backward()
    with jax.enable_x64(True):
        p64, s64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (params, state))

        def loss(p, x):
            y, _ = net.apply_with_state(p, s64, x, train=train)
            return (y * g).sum()

        gp, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(p64, jnp.asarray(x, jnp.float64))
        gw = next(leaf for leaf in jax.tree.leaves(gp) if leaf.ndim == 4)
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-7, atol=1e-9 * np.abs(tx.grad.numpy()).max(),
                                   err_msg=f"{name}: input gradient")
        np.testing.assert_allclose(gw, first.weight.grad.numpy(), rtol=1e-7,
                                   atol=1e-9 * np.abs(first.weight.grad.numpy()).max(),
                                   err_msg=f"{name}: first-layer weight gradient")


def test_from_torch_names_the_first_mismatch(torch):
    tnn = torch.nn
    net = build("lenet", 10, (1, 28, 28))
    bad = tnn.Sequential(tnn.Conv2d(1, 6, 3, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
                         tnn.Flatten(), tnn.Linear(400, 120), tnn.Linear(120, 84), tnn.Linear(84, 10))
    with pytest.raises(ValueError, match=r"from_torch: convolution 1 \(Conv2D\(.* -> 6, kernel_size=\(5, 5\).*\): "
                                         r"weight has shape \(6, 1, 5, 5\), torch's '0' \(6, 1, 3, 3\)"):
        from_torch(net, bad)
    no_bias = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2, bias=False), tnn.Conv2d(6, 16, 5), tnn.Linear(400, 120),
                             tnn.Linear(120, 84), tnn.Linear(84, 10))
    with pytest.raises(ValueError, match=r"convolution 1 .*: only jconv's has a bias"):
        from_torch(net, no_bias.state_dict())
    short = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Conv2d(6, 16, 5), tnn.Linear(400, 120),
                           tnn.Linear(120, 84))
    with pytest.raises(ValueError, match=r"from_torch: dense layer 3 .* has no counterpart: the torch network has 2"):
        from_torch(net, short)
    extra = tnn.Sequential(*short, tnn.Linear(84, 10), tnn.Linear(10, 10))
    with pytest.raises(ValueError, match=r"from_torch: the jconv network has 3 dense layers, the torch one 4"):
        from_torch(net, extra)
    with pytest.raises(TypeError, match=r"from_torch: `module_or_state_dict` must be a torch.nn.Module or a state dict"):
        from_torch(net, 3)
    with pytest.raises(ValueError, match=r"from_torch: `model` records no input shape"):
        from_torch(nn.Sequential(nn.Conv2D(6, 5)), tnn.Conv2d(1, 6, 5))
