"""Composite blocks of d2l's Modern CNNs that are layers in their own right."""

from __future__ import annotations

from jconv._src.checks import is_int
from jconv._src.nn.containers import Residual, Sequential
from jconv._src.nn.conv import Conv2D
from jconv._src.nn.linear import Activation
from jconv._src.nn.normalization import BatchNorm


def ResNeXtBlock(num_channels: int, groups: int, bot_mul: float, use_1x1conv: bool = False,  # noqa: N802
                 strides: int = 1) -> Residual:
    """d2l's ResNeXt block (section "Residual Networks"), with d2l's arguments.

    ``bot_channels = round(num_channels * bot_mul)``; the body is 1x1 conv to ``bot_channels`` -
    BN - ReLU - 3x3 conv (``strides``, ``bot_channels // groups`` groups: d2l's ``groups`` is the
    *group width*) - BN - ReLU - 1x1 conv to ``num_channels`` - BN; the shortcut is the input, or
    with ``use_1x1conv`` a strided 1x1 conv and BN; the sum goes through a ReLU.

    Args:
      num_channels: output channels.
      groups: channels per group of the 3x3 convolution (must divide ``bot_channels``).
      bot_mul: bottleneck ratio (1: no bottleneck, as RegNetX).
      use_1x1conv: project the shortcut (needed when the channels or the size change).
      strides: stride of the 3x3 convolution and of the projection.

    Returns:
      an :class:`jconv.nn.Residual` (``{"body", "shortcut"}`` parameters and BatchNorm state).

    Example:
      >>> from jconv import nn
      >>> nn.ResNeXtBlock(32, 16, 1, use_1x1conv=True, strides=2).output_shape((1, 16, 14, 14))
      (1, 32, 7, 7)
    """
    for name, value in (("num_channels", num_channels), ("groups", groups), ("strides", strides)):
        if not is_int(value) or value < 1:
            raise ValueError(f"ResNeXtBlock: `{name}` must be a positive int, got {value!r}")
    if not isinstance(bot_mul, (int, float)) or not bot_mul > 0:
        raise ValueError(f"ResNeXtBlock: `bot_mul` must be a positive number, got {bot_mul!r}")
    bot = int(round(num_channels * bot_mul))
    if bot % groups:
        raise ValueError(f"ResNeXtBlock: `groups` (the group width, ={groups}) must divide the bottleneck "
                         f"channels round(num_channels * bot_mul) (={bot})")
    body = Sequential(
        Conv2D(bot, 1), BatchNorm(), Activation("relu"),
        Conv2D(bot, 3, strides=strides, padding=1, groups=bot // groups), BatchNorm(), Activation("relu"),
        Conv2D(num_channels, 1), BatchNorm(),
    )
    shortcut = Sequential(Conv2D(num_channels, 1, strides=strides), BatchNorm()) if use_1x1conv else None
    return Residual(body, shortcut, activation="relu")
