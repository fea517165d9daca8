"""d2l's Network in Network (section "Network in Network")."""

from __future__ import annotations

from typing import Any

from jconv import nn
from jconv._src.models.common import check_args, first_that_fits, with_weight_init


def nin_block(channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    """A convolution followed by two 1x1 convolutions, each with ReLU."""
    return nn.Sequential(
        nn.Conv2D(channels, kernel_size, strides=strides, padding=padding, activation="relu"),
        nn.Conv2D(channels, 1, activation="relu"),
        nn.Conv2D(channels, 1, activation="relu"),
    )


def nin(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28),
        weight_init: Any = nn.he_normal,
        dropout: float = 0.5) -> nn.Sequential:
    """NiN as d2l builds it: NiN blocks of 96, 256, 384 channels with 3x3/2 max pools, dropout,
    a last block with ``num_classes`` channels and global average pooling (no dense layer).

    d2l's first block is 11x11 with stride 4 (224x224 input); for inputs too small for it
    (the default 1x28x28) it is 3x3, stride 1, padding 1 (28 -> 13 -> 6 -> 2).

    Weights are He (Kaiming) normal by default (``weight_init=nn.he_normal``): d2l initialises
    with Xavier uniform (``weight_init=nn.xavier_uniform``), with which this ReLU network without
    BatchNorm stays on the ln(10) loss plateau for several epochs of mnist5k.

    Example:
      >>> import jconv as jc
      >>> jc.models.nin().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("nin", num_classes, input_shape)

    def build(k: int, s: int, p: int) -> nn.Sequential:
        return nn.Sequential(
            nin_block(96, k, s, p), nn.MaxPool2D(3, 2),
            nin_block(256, 5, 1, 2), nn.MaxPool2D(3, 2),
            nin_block(384, 3, 1, 1), nn.MaxPool2D(3, 2),
            nn.Dropout(dropout),
            nin_block(num_classes, 3, 1, 1),
            nn.GlobalAvgPool2D(), nn.Flatten(),
        )

    return with_weight_init(first_that_fits("nin", shape, lambda: build(11, 4, 0), lambda: build(3, 1, 1)),
                            weight_init)
