"""jconv: convolutional neural networks as pure JAX functions.

The functional ops live flat at the top level (``import jconv as jc``); layers in ``jconv.nn``.
"""

from jconv._src.conv import conv2d as conv2d
from jconv._src.pooling import avg_pool2d as avg_pool2d
from jconv._src.pooling import global_avg_pool2d as global_avg_pool2d
from jconv._src.pooling import global_max_pool2d as global_max_pool2d
from jconv._src.pooling import max_pool2d as max_pool2d
from jconv._src.seeds import corr2d as corr2d
from jconv._src.seeds import corr2d_multi_in as corr2d_multi_in
from jconv._src.seeds import corr2d_multi_in_out as corr2d_multi_in_out
from jconv._src.seeds import corr2d_multi_in_out_1x1 as corr2d_multi_in_out_1x1
from jconv._src.seeds import pool2d as pool2d

from jconv import data as data
from jconv import models as models
from jconv import nn as nn
from jconv import train as train

__version__ = "0.1.0"

__all__ = (
    "avg_pool2d",
    "conv2d",
    "data",
    "corr2d",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "global_avg_pool2d",
    "global_max_pool2d",
    "max_pool2d",
    "models",
    "nn",
    "pool2d",
    "train",
)
