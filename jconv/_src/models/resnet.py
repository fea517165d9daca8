"""d2l's ResNet-18 (section "Residual Networks")."""

from __future__ import annotations

from jconv import nn
from jconv._src.models.common import check_args, first_that_fits


def residual(channels: int, strides: int = 1, use_1x1conv: bool = False) -> nn.Residual:
    """d2l's ``Residual``: conv3x3 (stride) - BN - ReLU - conv3x3 - BN, plus the input (or a 1x1
    strided convolution of it), then ReLU."""
    body = nn.Sequential(
        nn.Conv2D(channels, 3, strides=strides, padding=1), nn.BatchNorm(), nn.Activation("relu"),
        nn.Conv2D(channels, 3, padding=1), nn.BatchNorm(),
    )
    shortcut = nn.Conv2D(channels, 1, strides=strides) if use_1x1conv else None
    return nn.Residual(body, shortcut, activation="relu")


def resnet_stage(channels: int, num_residuals: int, first: bool = False) -> nn.Sequential:
    """``num_residuals`` blocks; the first halves the size and changes the channels (except in
    the first stage, which follows the stem's pool)."""
    return nn.Sequential(*(
        residual(channels, 2, True) if i == 0 and not first else residual(channels)
        for i in range(num_residuals)
    ))


def resnet18(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Sequential:
    """ResNet-18 as d2l builds it: a 7x7/2 convolution, BN, ReLU and 3x3/2 max pool, four stages
    of two residual blocks (64, 128, 256, 512 channels), global average pooling, one dense layer.
    d2l feeds it 96x96 images; the same net fits 28x28 (28 -> 14 -> 7 -> 7 -> 4 -> 2 -> 1).

    Example:
      >>> import jconv as jc
      >>> jc.models.resnet18().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("resnet18", num_classes, input_shape)
    net = lambda: nn.Sequential(  # noqa: E731
        nn.Sequential(nn.Conv2D(64, 7, strides=2, padding=3), nn.BatchNorm(), nn.Activation("relu"),
                      nn.MaxPool2D(3, 2, padding=1)),
        resnet_stage(64, 2, first=True), resnet_stage(128, 2), resnet_stage(256, 2), resnet_stage(512, 2),
        nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(num_classes),
    )
    return first_that_fits("resnet18", shape, net)
