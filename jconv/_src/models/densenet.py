"""d2l's DenseNet (section "Densely Connected Networks")."""

from __future__ import annotations

from jconv import nn
from jconv._src.models.common import check_args, first_that_fits


def conv_block(channels: int) -> nn.Sequential:
    """BN - ReLU - 3x3 convolution (d2l's ``conv_block``)."""
    return nn.Sequential(nn.BatchNorm(), nn.Activation("relu"), nn.Conv2D(channels, 3, padding=1))


def dense_block(num_convs: int, growth_rate: int) -> nn.Sequential:
    """Each conv block's output is concatenated to its input: ``num_convs * growth_rate`` more
    channels (``nn.Sequential()`` is the identity branch)."""
    return nn.Sequential(*(nn.Concat(nn.Sequential(), conv_block(growth_rate)) for _ in range(num_convs)))


def transition_block(channels: int) -> nn.Sequential:
    """BN - ReLU - 1x1 convolution to ``channels`` - 2x2/2 average pool."""
    return nn.Sequential(nn.BatchNorm(), nn.Activation("relu"), nn.Conv2D(channels, 1), nn.AvgPool2D(2, 2))


def densenet(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28),
             growth_rate: int = 32, num_convs: tuple[int, ...] = (4, 4, 4, 4)) -> nn.Sequential:
    """DenseNet as d2l builds it: ResNet's stem (64 channels), four dense blocks of 4 conv blocks
    (growth rate 32) with transition blocks halving channels and size between them, BN, ReLU,
    global average pooling and one dense layer.

    d2l feeds it 96x96 images. Its stem divides the size by 4 and the three transitions by 8,
    which leaves nothing of a 28x28 input; for inputs too small for that, the stem's max pool is
    left out (28 -> 14 -> 7 -> 3 -> 1).

    Example:
      >>> import jconv as jc
      >>> jc.models.densenet().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("densenet", num_classes, input_shape)

    def build(stem_pool: bool) -> nn.Sequential:
        stem = [nn.Conv2D(64, 7, strides=2, padding=3), nn.BatchNorm(), nn.Activation("relu")]
        blocks, channels = [nn.Sequential(*stem, *([nn.MaxPool2D(3, 2, padding=1)] if stem_pool else []))], 64
        for i, n in enumerate(num_convs):
            blocks.append(dense_block(n, growth_rate))
            channels += n * growth_rate
            if i != len(num_convs) - 1:
                channels //= 2
                blocks.append(transition_block(channels))
        return nn.Sequential(*blocks, nn.BatchNorm(), nn.Activation("relu"), nn.GlobalAvgPool2D(),
                             nn.Flatten(), nn.Dense(num_classes))

    return first_that_fits("densenet", shape, lambda: build(True), lambda: build(False))
