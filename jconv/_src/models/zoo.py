"""The command line's model names (each model's training defaults: ``jconv._src.training.config``)."""

from __future__ import annotations

from typing import Callable

from jconv import nn
from jconv._src.models.alexnet import alexnet
from jconv._src.models.densenet import densenet
from jconv._src.models.googlenet import googlenet
from jconv._src.models.lenet import lenet
from jconv._src.models.nin import nin
from jconv._src.models.resnet import resnet18
from jconv._src.models.vgg import vgg11

Builder = Callable[[int, tuple[int, int, int]], nn.Sequential]

# ``lenet`` (the default) is the modern variant: the classic sigmoid network sits on the loss
# plateau at ln(10) for many epochs on small data (as in d2l).
MODELS: dict[str, Builder] = {
    "lenet": lambda n, shape: lenet(n, "modern", input_shape=shape),
    "lenet-classic": lambda n, shape: lenet(n, "classic", input_shape=shape),
    "alexnet": lambda n, shape: alexnet(n, input_shape=shape),
    "vgg11": lambda n, shape: vgg11(n, input_shape=shape),
    "nin": lambda n, shape: nin(n, input_shape=shape),
    "googlenet": lambda n, shape: googlenet(n, input_shape=shape),
    "resnet18": lambda n, shape: resnet18(n, input_shape=shape),
    "densenet": lambda n, shape: densenet(n, input_shape=shape),
}
