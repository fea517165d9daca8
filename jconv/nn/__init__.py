"""Layers as immutable ``(init, apply, output_shape)`` objects over parameter pytrees."""

from jconv._src.nn.adaptive_pooling import AdaptiveAvgPool1D as AdaptiveAvgPool1D
from jconv._src.nn.adaptive_pooling import AdaptiveAvgPool2D as AdaptiveAvgPool2D
from jconv._src.nn.adaptive_pooling import AdaptiveAvgPool3D as AdaptiveAvgPool3D
from jconv._src.nn.adaptive_pooling import AdaptiveMaxPool1D as AdaptiveMaxPool1D
from jconv._src.nn.adaptive_pooling import AdaptiveMaxPool2D as AdaptiveMaxPool2D
from jconv._src.nn.adaptive_pooling import AdaptiveMaxPool3D as AdaptiveMaxPool3D
from jconv._src.nn.base import ACTIVATIONS as ACTIVATIONS
from jconv._src.nn.blocks import ResNeXtBlock as ResNeXtBlock
from jconv._src.nn.base import InputShapeError as InputShapeError
from jconv._src.nn.base import Layer as Layer
from jconv._src.nn.containers import Concat as Concat
from jconv._src.nn.containers import Lambda as Lambda
from jconv._src.nn.containers import Residual as Residual
from jconv._src.nn.containers import Sequential as Sequential
from jconv._src.nn.conv import Conv1D as Conv1D
from jconv._src.nn.conv import Conv1DTranspose as Conv1DTranspose
from jconv._src.nn.conv import Conv2D as Conv2D
from jconv._src.nn.conv import Conv2DTranspose as Conv2DTranspose
from jconv._src.nn.conv import Conv3D as Conv3D
from jconv._src.nn.conv import Conv3DTranspose as Conv3DTranspose
from jconv._src.nn.dropout import Dropout as Dropout
from jconv._src.nn.global_pooling import GlobalAvgPool1D as GlobalAvgPool1D
from jconv._src.nn.global_pooling import GlobalAvgPool2D as GlobalAvgPool2D
from jconv._src.nn.global_pooling import GlobalAvgPool3D as GlobalAvgPool3D
from jconv._src.nn.global_pooling import GlobalMaxPool1D as GlobalMaxPool1D
from jconv._src.nn.global_pooling import GlobalMaxPool2D as GlobalMaxPool2D
from jconv._src.nn.global_pooling import GlobalMaxPool3D as GlobalMaxPool3D
from jconv._src.nn.initializers import centered as centered
from jconv._src.nn.initializers import gluon_uniform as gluon_uniform
from jconv._src.nn.initializers import he_normal as he_normal
from jconv._src.nn.initializers import xavier_uniform as xavier_uniform
from jconv._src.nn.linear import Activation as Activation
from jconv._src.nn.linear import Dense as Dense
from jconv._src.nn.linear import Flatten as Flatten
from jconv._src.nn.normalization import BatchNorm as BatchNorm
from jconv._src.nn.pooling import AvgPool1D as AvgPool1D
from jconv._src.nn.pooling import AvgPool2D as AvgPool2D
from jconv._src.nn.pooling import AvgPool3D as AvgPool3D
from jconv._src.nn.pooling import MaxPool1D as MaxPool1D
from jconv._src.nn.pooling import MaxPool2D as MaxPool2D
from jconv._src.nn.pooling import MaxPool3D as MaxPool3D
from jconv._src.nn.summary import summary as summary

__all__ = (
    "ACTIVATIONS",
    "Activation",
    "AdaptiveAvgPool1D",
    "AdaptiveAvgPool2D",
    "AdaptiveAvgPool3D",
    "AdaptiveMaxPool1D",
    "AdaptiveMaxPool2D",
    "AdaptiveMaxPool3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "BatchNorm",
    "Concat",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "InputShapeError",
    "Lambda",
    "Layer",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "ResNeXtBlock",
    "Residual",
    "Sequential",
    "centered",
    "gluon_uniform",
    "he_normal",
    "summary",
    "xavier_uniform",
)
