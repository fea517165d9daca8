"""Layers as immutable ``(init, apply, output_shape)`` objects over parameter pytrees."""

from jconv._src.nn.base import ACTIVATIONS as ACTIVATIONS
from jconv._src.nn.base import InputShapeError as InputShapeError
from jconv._src.nn.linear import Activation as Activation
from jconv._src.nn.pooling import AvgPool2D as AvgPool2D
from jconv._src.nn.conv import Conv2D as Conv2D
from jconv._src.nn.linear import Dense as Dense
from jconv._src.nn.linear import Flatten as Flatten
from jconv._src.nn.pooling import GlobalAvgPool2D as GlobalAvgPool2D
from jconv._src.nn.pooling import GlobalMaxPool2D as GlobalMaxPool2D
from jconv._src.nn.base import Layer as Layer
from jconv._src.nn.pooling import MaxPool2D as MaxPool2D
from jconv._src.nn.containers import Concat as Concat
from jconv._src.nn.containers import Lambda as Lambda
from jconv._src.nn.containers import Residual as Residual
from jconv._src.nn.containers import Sequential as Sequential
from jconv._src.nn.dropout import Dropout as Dropout
from jconv._src.nn.normalization import BatchNorm as BatchNorm
from jconv._src.nn.initializers import gluon_uniform as gluon_uniform
from jconv._src.nn.initializers import he_normal as he_normal
from jconv._src.nn.summary import summary as summary
from jconv._src.nn.initializers import xavier_uniform as xavier_uniform

__all__ = (
    "ACTIVATIONS",
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Concat",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "InputShapeError",
    "Lambda",
    "Layer",
    "MaxPool2D",
    "Residual",
    "Sequential",
    "gluon_uniform",
    "he_normal",
    "summary",
    "xavier_uniform",
)
