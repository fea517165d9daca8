"""d2l's BatchNorm LeNet (section "Batch Normalization")."""

from __future__ import annotations

from jconv import nn
from jconv._src.models.common import check_args, first_that_fits


def bn_lenet(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Sequential:
    """d2l's ``BNLeNet``: LeNet with a BatchNorm after every convolution and hidden dense layer,
    sigmoid activations and 2x2/2 average pooling (the PyTorch tab: the first convolution is
    unpadded, 28 -> 24 -> 12 -> 8 -> 4).

    Example:
      >>> import jconv as jc
      >>> jc.models.bn_lenet().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("bn_lenet", num_classes, input_shape)
    net = lambda: nn.Sequential(  # noqa: E731
        nn.Conv2D(6, 5), nn.BatchNorm(), nn.Activation("sigmoid"), nn.AvgPool2D(2, 2),
        nn.Conv2D(16, 5), nn.BatchNorm(), nn.Activation("sigmoid"), nn.AvgPool2D(2, 2),
        nn.Dense(120), nn.BatchNorm(), nn.Activation("sigmoid"),
        nn.Dense(84), nn.BatchNorm(), nn.Activation("sigmoid"),
        nn.Dense(num_classes),
    )
    return first_that_fits("bn_lenet", shape, net)
