"""d2l's LeNet-5."""

from __future__ import annotations

from jconv import nn
from jconv._src.models.common import built_for, check_args, fits

VARIANTS = ("classic", "modern")


def lenet(num_classes: int = 10, variant: str = "classic", *, layout: str = "NCHW",
          input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Sequential:
    """d2l's LeNet-5 for ``(N, 1, 28, 28)`` input (61,706 parameters with 10 classes).

    Args:
      num_classes: size of the last layer.
      variant: ``"classic"`` (sigmoid, average pooling: d2l's LeNet) or ``"modern"`` (ReLU,
        max pooling).
      layout: ``"NCHW"`` or ``"NHWC"`` for the convolutional part.
      input_shape: ``(C, H, W)`` of one image (checked; the dense layers size themselves).

    Returns:
      ``Conv2D(6, 5, padding=2) -> pool -> Conv2D(16, 5) -> pool -> Dense(120) -> Dense(84)
      -> Dense(num_classes)``.

    Example:
      >>> import jconv as jc
      >>> jc.models.lenet().output_shape((1, 1, 28, 28))
      (1, 10)
    """
    if variant not in VARIANTS:
        raise ValueError(f"lenet: `variant` must be one of {VARIANTS}, got {variant!r}")
    shape = check_args("lenet", num_classes, input_shape)
    act = "sigmoid" if variant == "classic" else "relu"
    pool = nn.AvgPool2D if variant == "classic" else nn.MaxPool2D
    net = nn.Sequential(
        nn.Conv2D(6, kernel_size=5, padding=2, activation=act, layout=layout),
        pool(pool_size=2, strides=2, layout=layout),
        nn.Conv2D(16, kernel_size=5, activation=act, layout=layout),
        pool(pool_size=2, strides=2, layout=layout),
        nn.Dense(120, activation=act),
        nn.Dense(84, activation=act),
        nn.Dense(num_classes),
    )
    shape = shape if layout == "NCHW" else (1,) + tuple(input_shape[1:]) + (input_shape[0],)
    if not fits(net, shape):
        raise ValueError(f"lenet: input_shape {tuple(input_shape)} is too small for LeNet")
    return built_for(net, shape)
