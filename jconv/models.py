"""Model builders (d2l's "Modern CNNs" and LeNet), each returning an :class:`jconv.nn.Sequential`."""

from jconv._src.models.alexnet import alexnet as alexnet
from jconv._src.models.bn_lenet import bn_lenet as bn_lenet
from jconv._src.models.densenet import densenet as densenet
from jconv._src.models.googlenet import googlenet as googlenet
from jconv._src.models.lenet import lenet as lenet
from jconv._src.models.nin import nin as nin
from jconv._src.models.resnet import resnet18 as resnet18
from jconv._src.models.resnext import anynet as anynet
from jconv._src.models.resnext import regnetx32 as regnetx32
from jconv._src.models.resnext import resnext as resnext
from jconv._src.models.resnext import resnext_block as resnext_block
from jconv._src.models.torch_port import from_torch as from_torch
from jconv._src.models.vgg import vgg11 as vgg11

__all__ = ("alexnet", "anynet", "bn_lenet", "densenet", "from_torch", "googlenet", "lenet", "nin", "regnetx32",
           "resnet18", "resnext", "resnext_block", "vgg11")
