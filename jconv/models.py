"""Model builders (d2l's "Modern CNNs" and LeNet), each returning an :class:`jconv.nn.Sequential`."""

from jconv._src.models.alexnet import alexnet as alexnet
from jconv._src.models.densenet import densenet as densenet
from jconv._src.models.googlenet import googlenet as googlenet
from jconv._src.models.lenet import lenet as lenet
from jconv._src.models.nin import nin as nin
from jconv._src.models.resnet import resnet18 as resnet18
from jconv._src.models.vgg import vgg11 as vgg11

__all__ = ("alexnet", "densenet", "googlenet", "lenet", "nin", "resnet18", "vgg11")
