"""d2l's GoogLeNet (section "Multi-Branch Networks")."""

from __future__ import annotations

from typing import Any

from jconv import nn
from jconv._src.models.common import check_args, first_that_fits, with_weight_init


def inception(c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int) -> nn.Concat:
    """d2l's Inception block: four branches (1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then
    1x1), each ending in ReLU, concatenated on the channels: ``c1 + c2[1] + c3[1] + c4``."""
    relu = dict(activation="relu")
    return nn.Concat(
        nn.Sequential(nn.Conv2D(c1, 1, **relu)),
        nn.Sequential(nn.Conv2D(c2[0], 1, **relu), nn.Conv2D(c2[1], 3, padding=1, **relu)),
        nn.Sequential(nn.Conv2D(c3[0], 1, **relu), nn.Conv2D(c3[1], 5, padding=2, **relu)),
        nn.Sequential(nn.MaxPool2D(3, 1, padding=1), nn.Conv2D(c4, 1, **relu)),
    )


def googlenet(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28),
              weight_init: Any = nn.he_normal) -> nn.Sequential:
    """GoogLeNet as d2l builds it: a 7x7/2 stem, 9 Inception blocks in three stages with 3x3/2
    max pools, global average pooling and one dense layer. d2l feeds it 96x96 images; the same
    net fits 28x28 (28 -> 14 -> 7 -> 4 -> 2 -> 1).

    Weights are He (Kaiming) normal by default (``weight_init=nn.he_normal``): d2l initialises
    with Xavier uniform (``weight_init=nn.xavier_uniform``), with which this ReLU network without
    BatchNorm stays on the ln(10) loss plateau for several epochs of mnist5k.

    Example:
      >>> import jconv as jc
      >>> jc.models.googlenet().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("googlenet", num_classes, input_shape)
    pool = lambda: nn.MaxPool2D(3, 2, padding=1)  # noqa: E731
    net = lambda: nn.Sequential(  # noqa: E731
        nn.Sequential(nn.Conv2D(64, 7, strides=2, padding=3, activation="relu"), pool()),
        nn.Sequential(nn.Conv2D(64, 1, activation="relu"),
                      nn.Conv2D(192, 3, padding=1, activation="relu"), pool()),
        nn.Sequential(inception(64, (96, 128), (16, 32), 32),
                      inception(128, (128, 192), (32, 96), 64), pool()),
        nn.Sequential(inception(192, (96, 208), (16, 48), 64),
                      inception(160, (112, 224), (24, 64), 64),
                      inception(128, (128, 256), (24, 64), 64),
                      inception(112, (144, 288), (32, 64), 64),
                      inception(256, (160, 320), (32, 128), 128), pool()),
        nn.Sequential(inception(256, (160, 320), (32, 128), 128),
                      inception(384, (192, 384), (48, 128), 128),
                      nn.GlobalAvgPool2D(), nn.Flatten()),
        nn.Dense(num_classes),
    )
    return with_weight_init(first_that_fits("googlenet", shape, net), weight_init)
