"""ResNeXt (d2l's ResNeXt block in ResNet-18's layout) and AnyNet / RegNetX-32 (section
"Designing Convolution Network Architectures")."""

from __future__ import annotations

from typing import Sequence

from jconv import nn
from jconv._src.models.common import check_args, first_that_fits

#: One AnyNet stage: ``(depth, num_channels, groups, bot_mul)`` (d2l's ``stage`` arguments;
#: ``groups`` is the group width).
Stage = tuple[int, int, int, float]


def resnext_block(num_channels: int, groups: int, bot_mul: float, use_1x1conv: bool = False,
                  strides: int = 1) -> nn.Residual:
    """d2l's ResNeXt block: :func:`jconv.nn.ResNeXtBlock` (the same function)."""
    return nn.ResNeXtBlock(num_channels, groups, bot_mul, use_1x1conv, strides)


def resnext(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28), groups: int = 16,
            bot_mul: float = 1.0, channels: Sequence[int] = (64, 128, 256, 512), depth: int = 2) -> nn.Sequential:
    """ResNet-18's layout built from ResNeXt blocks (d2l defines the block, not a network).

    ResNet-18's stem (7x7/2 convolution to 64 channels, BN, ReLU, 3x3/2 max pool), then one stage
    per entry of ``channels`` of ``depth`` ResNeXt blocks (``groups``: the group width of the 3x3
    convolutions; ``bot_mul``: the bottleneck ratio); every stage but the first starts with a
    strided block whose shortcut is projected (a stage that changes the channels projects it too),
    then global average pooling and one dense layer. 28x28 fits (28 -> 14 -> 7 -> 7 -> 4 -> 2 -> 1).

    Example:
      >>> import jconv as jc
      >>> jc.models.resnext().output_shape((2, 1, 28, 28))
      (2, 10)
    """
    shape = check_args("resnext", num_classes, input_shape)

    def stage(i: int, c: int) -> nn.Sequential:
        project = i > 0 or c != 64
        return nn.Sequential(*(
            resnext_block(c, groups, bot_mul, use_1x1conv=project, strides=2 if i > 0 else 1) if j == 0
            else resnext_block(c, groups, bot_mul) for j in range(depth)))

    net = lambda: nn.Sequential(  # noqa: E731
        nn.Sequential(nn.Conv2D(64, 7, strides=2, padding=3), nn.BatchNorm(), nn.Activation("relu"),
                      nn.MaxPool2D(3, 2, padding=1)),
        *(stage(i, c) for i, c in enumerate(channels)),
        nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(num_classes),
    )
    return first_that_fits("resnext", shape, net)


def anynet(arch: Sequence[Stage], stem_channels: int, num_classes: int = 10, *,
           input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Sequential:
    """d2l's ``AnyNet``: a stem (3x3/2 convolution to ``stem_channels``, BN, ReLU), one stage per
    ``(depth, num_channels, groups, bot_mul)`` of ``arch`` (``depth`` ResNeXt blocks, the first
    strided by 2 with a projected shortcut), then global average pooling, flatten and a dense layer.

    Example:
      >>> import jconv as jc
      >>> jc.models.anynet([(2, 32, 16, 1)], 16).output_shape((1, 1, 28, 28))
      (1, 10)
    """
    shape = check_args("anynet", num_classes, input_shape)
    if not arch or any(not isinstance(s, (tuple, list)) or len(s) != 4 for s in arch):
        raise ValueError(f"anynet: `arch` must be a non-empty sequence of (depth, num_channels, groups, bot_mul), "
                         f"got {arch!r}")

    def stage(depth: int, num_channels: int, groups: int, bot_mul: float) -> nn.Sequential:
        return nn.Sequential(*(
            resnext_block(num_channels, groups, bot_mul, use_1x1conv=True, strides=2) if i == 0
            else resnext_block(num_channels, groups, bot_mul) for i in range(depth)))

    net = lambda: nn.Sequential(  # noqa: E731
        nn.Sequential(nn.Conv2D(stem_channels, 3, strides=2, padding=1), nn.BatchNorm(), nn.Activation("relu")),
        *(stage(*s) for s in arch),
        nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(num_classes),
    )
    return first_that_fits("anynet", shape, net)


def regnetx32(num_classes: int = 10, *, input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Sequential:
    """d2l's ``RegNetX32``: :func:`anynet` with stem 32, depths (4, 6), widths (32, 80), group width
    16 and bottleneck ratio 1. d2l trains it on 96x96; 28x28 fits (28 -> 14 -> 7 -> 4).

    Example:
      >>> import jconv as jc
      >>> jc.models.regnetx32().output_shape((1, 1, 28, 28))
      (1, 10)
    """
    check_args("regnetx32", num_classes, input_shape)
    return anynet(((4, 32, 16, 1), (6, 80, 16, 1)), 32, num_classes, input_shape=input_shape)
