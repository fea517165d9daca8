"""The command line's model names and :func:`build` (each model's training recipe:
``jconv._src.training.config.RECIPES``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from jconv import nn
from jconv._src.models.alexnet import alexnet
from jconv._src.models.bn_lenet import bn_lenet
from jconv._src.models.densenet import densenet
from jconv._src.models.googlenet import googlenet
from jconv._src.models.lenet import lenet
from jconv._src.models.nin import nin
from jconv._src.models.resnet import resnet18
from jconv._src.models.resnext import regnetx32, resnext
from jconv._src.models.vgg import vgg11

Builder = Callable[..., nn.Sequential]

# ``lenet`` (the default) is the modern variant: the classic sigmoid network sits on the loss
# plateau at ln(10) for many epochs on small data (as in d2l).
MODELS: dict[str, Builder] = {
    "lenet": lambda n, shape: lenet(n, "modern", input_shape=shape),
    "lenet-classic": lambda n, shape: lenet(n, "classic", input_shape=shape),
    "bn-lenet": lambda n, shape: bn_lenet(n, input_shape=shape),
    "alexnet": lambda n, shape, **kw: alexnet(n, input_shape=shape, **kw),
    "vgg11": lambda n, shape, **kw: vgg11(n, input_shape=shape, **kw),
    "nin": lambda n, shape, **kw: nin(n, input_shape=shape, **kw),
    "googlenet": lambda n, shape, **kw: googlenet(n, input_shape=shape, **kw),
    "resnet18": lambda n, shape: resnet18(n, input_shape=shape),
    "resnext": lambda n, shape: resnext(n, input_shape=shape),
    "regnet": lambda n, shape: regnetx32(n, input_shape=shape),
    "densenet": lambda n, shape: densenet(n, input_shape=shape),
}
#: The builders that take ``weight_init=`` (the others start from Xavier uniform, d2l's, always).
_TAKE_INIT = ("alexnet", "vgg11", "nin", "googlenet")
INITS = {"xavier": nn.xavier_uniform, "he": nn.he_normal}


@dataclasses.dataclass(frozen=True)
class Resize:
    """Bilinear resize of ``(N, C, H, W)`` images to ``(N, C, size, size)`` (``jax.image.resize``, on
    the device): the function of ``--resize``'s :class:`jconv.nn.Lambda`."""

    size: int

    @property
    def __name__(self) -> str:  # the Lambda's repr
        return f"resize to {self.size}x{self.size}"

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.image.resize(x, x.shape[:-2] + (self.size, self.size), "bilinear")


def build(name: str, num_classes: int, input_shape: tuple[int, int, int], *, init: str | None = None,
          resize: int | None = None) -> nn.Sequential:
    """The ``--model`` network ``name`` for images of ``input_shape``: initialised by ``init``
    (``"xavier"``: d2l's, NiN's zero-bias last convolution included; ``"he"``; or None: the
    builder's default) and, with ``resize``, preceded by a layer
    that resizes the images to ``resize x resize`` inside the compiled step (d2l's ``resize=``)."""
    kw: dict[str, Any] = {"weight_init": INITS[init]} if init and name in _TAKE_INIT else {}
    if init == "xavier" and name == "nin":
        kw["head_bias"] = None  # d2l's initialisation throughout (see models.nin)
    if resize is None:
        return MODELS[name](num_classes, input_shape, **kw)
    net = MODELS[name](num_classes, (input_shape[0], resize, resize), **kw)
    return nn.Sequential(nn.Lambda(Resize(resize)), *net.layers, input_shape=input_shape)
