"""Layers as immutable ``(init, apply, output_shape)`` objects over parameter pytrees."""

from jconv._src.layers import ACTIVATIONS as ACTIVATIONS
from jconv._src.layers import Activation as Activation
from jconv._src.layers import AvgPool2D as AvgPool2D
from jconv._src.layers import Conv2D as Conv2D
from jconv._src.layers import Dense as Dense
from jconv._src.layers import Flatten as Flatten
from jconv._src.layers import GlobalAvgPool2D as GlobalAvgPool2D
from jconv._src.layers import GlobalMaxPool2D as GlobalMaxPool2D
from jconv._src.layers import Layer as Layer
from jconv._src.layers import MaxPool2D as MaxPool2D
from jconv._src.layers import Sequential as Sequential
from jconv._src.layers import gluon_uniform as gluon_uniform
from jconv._src.layers import summary as summary
from jconv._src.layers import xavier_uniform as xavier_uniform

__all__ = (
    "ACTIVATIONS",
    "Activation",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Layer",
    "MaxPool2D",
    "Sequential",
    "gluon_uniform",
    "summary",
    "xavier_uniform",
)
