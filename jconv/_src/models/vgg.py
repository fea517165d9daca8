"""d2l's VGG (section "Networks Using Blocks")."""

from __future__ import annotations

from typing import Any

from jconv import nn
from jconv._src.models.common import built_for, check_args, with_weight_init

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, channels: int, pool: bool = True) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1, ReLU), then a 2x2/2 max pool."""
    convs = [nn.Conv2D(channels, 3, padding=1, activation="relu") for _ in range(num_convs)]
    return nn.Sequential(*convs, *([nn.MaxPool2D(2, 2)] if pool else []))


def vgg11(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28),
          weight_init: Any = nn.he_normal,
          dropout: float = 0.5, width: int = 1) -> nn.Sequential:
    """VGG-11 as d2l builds it: blocks of (1, 64), (1, 128), (2, 256), (2, 512), (2, 512)
    convolutions x channels, each ending in a 2x2/2 max pool, then two 4096-unit dense layers
    with dropout. ``width`` divides every channel count (d2l trains ``ratio = 4``).

    A block's pool is left out where the feature map is already 1 pixel high or wide (28x28
    input: 28 -> 14 -> 7 -> 3 -> 1, and the fifth block keeps 1x1); at 224x224 this is d2l's net.

    Weights are He (Kaiming) normal by default (``weight_init=nn.he_normal``): d2l initialises
    with Xavier uniform (``weight_init=nn.xavier_uniform``), with which this ReLU network without
    BatchNorm stays on the ln(10) loss plateau for several epochs of mnist5k.

    Example:
      >>> import jconv as jc
      >>> jc.models.vgg11().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("vgg11", num_classes, input_shape)
    blocks, (h, w) = [], shape[2:]
    for num_convs, channels in VGG11:
        pool = min(h, w) >= 2
        blocks.append(vgg_block(num_convs, channels // width, pool))
        h, w = (h // 2, w // 2) if pool else (h, w)
    net = nn.Sequential(
        *blocks, nn.Flatten(),
        nn.Dense(4096 // width, activation="relu"), nn.Dropout(dropout),
        nn.Dense(4096 // width, activation="relu"), nn.Dropout(dropout),
        nn.Dense(num_classes),
    )
    return with_weight_init(built_for(net, shape), weight_init)
