"""Model builders returning :class:`jconv.nn.Sequential` networks."""

from __future__ import annotations

from jconv import nn

VARIANTS = ("classic", "modern")


def lenet(num_classes: int = 10, variant: str = "classic", *, layout: str = "NCHW") -> nn.Sequential:
    """d2l's LeNet-5 for ``(N, 1, 28, 28)`` input (61,706 parameters with 10 classes).

    Args:
      num_classes: size of the last layer.
      variant: ``"classic"`` (sigmoid, average pooling: d2l's LeNet) or ``"modern"`` (ReLU,
        max pooling).
      layout: ``"NCHW"`` or ``"NHWC"`` for the convolutional part.

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
    act = "sigmoid" if variant == "classic" else "relu"
    pool = nn.AvgPool2D if variant == "classic" else nn.MaxPool2D
    return nn.Sequential(
        nn.Conv2D(6, kernel_size=5, padding=2, activation=act, layout=layout),
        pool(pool_size=2, strides=2, layout=layout),
        nn.Conv2D(16, kernel_size=5, activation=act, layout=layout),
        pool(pool_size=2, strides=2, layout=layout),
        nn.Dense(120, activation=act),
        nn.Dense(84, activation=act),
        nn.Dense(num_classes),
    )


# The command line's model names. ``lenet`` (the default) is the modern variant: the classic
# sigmoid network sits on the loss plateau at ln(10) for many epochs on small data (as in d2l).
MODELS = {
    "lenet": lambda num_classes: lenet(num_classes, "modern"),
    "lenet-classic": lambda num_classes: lenet(num_classes, "classic"),
}
