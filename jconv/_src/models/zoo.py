"""The command line's model names, and each model's training defaults where d2l's differ."""

from __future__ import annotations

from typing import Any, Callable

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

# d2l trains each of these for 10 epochs on 60,000 images with plain SGD (lr 0.01-0.1, batch
# 128-256): 2,300-4,700 steps. mnist5k gives 32 steps of 128 per epoch; with d2l's recipe,
# ResNet-18 reached 0.945-0.957 after 3 epochs and GoogLeNet stayed on the ln(10) plateau, so
# jconv's defaults for the modern CNNs are SGD with momentum 0.9, lr 0.01, batch 128 (measured
# for every model in the README's model table). VGG, NiN and GoogLeNet (ReLU, no BatchNorm) also
# start from He-normal weights instead of d2l's Xavier (their builders' default): with Xavier,
# VGG-11 stayed at loss ln(10) for 3 epochs, with He it reached 0.924.
_MODERN = {"lr": 0.01, "batch_size": 128, "momentum": 0.9}
DEFAULTS: dict[str, dict[str, Any]] = {
    name: dict(_MODERN) for name in ("alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet")
}
