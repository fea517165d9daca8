"""jconv: convolutional neural networks as pure JAX functions.

The functional ops live flat at the top level (``import jconv as jc``); layers in ``jconv.nn``.
"""

from jconv._src import host_memory as _host_memory  # noqa: F401  first: tunes malloc before JAX starts its threads
from jconv._src.ops.conv import conv2d as conv2d
from jconv._src.ops.conv import conv as conv
from jconv._src.ops.conv import conv1d as conv1d
from jconv._src.ops.conv import conv3d as conv3d
from jconv._src.ops.conv import conv_transpose as conv_transpose
from jconv._src.ops.conv import conv_transpose1d as conv_transpose1d
from jconv._src.ops.conv import conv_transpose2d as conv_transpose2d
from jconv._src.ops.conv import conv_transpose3d as conv_transpose3d
from jconv._src.onednn import cpu_conv_backend as cpu_conv_backend
from jconv._src.ops.adaptive import adaptive_avg_pool1d as adaptive_avg_pool1d
from jconv._src.ops.adaptive import adaptive_avg_pool2d as adaptive_avg_pool2d
from jconv._src.ops.adaptive import adaptive_avg_pool3d as adaptive_avg_pool3d
from jconv._src.ops.adaptive import adaptive_max_pool1d as adaptive_max_pool1d
from jconv._src.ops.adaptive import adaptive_max_pool2d as adaptive_max_pool2d
from jconv._src.ops.adaptive import adaptive_max_pool3d as adaptive_max_pool3d
from jconv._src.ops.pooling import avg_pool1d as avg_pool1d
from jconv._src.ops.pooling import avg_pool3d as avg_pool3d
from jconv._src.ops.pooling import global_avg_pool1d as global_avg_pool1d
from jconv._src.ops.pooling import global_avg_pool3d as global_avg_pool3d
from jconv._src.ops.pooling import global_max_pool1d as global_max_pool1d
from jconv._src.ops.pooling import global_max_pool3d as global_max_pool3d
from jconv._src.ops.pooling import max_pool1d as max_pool1d
from jconv._src.ops.pooling import max_pool3d as max_pool3d
from jconv._src.ops.pooling import avg_pool2d as avg_pool2d
from jconv._src.ops.pooling import global_avg_pool2d as global_avg_pool2d
from jconv._src.ops.pooling import global_max_pool2d as global_max_pool2d
from jconv._src.ops.pooling import max_pool2d as max_pool2d
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
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "corr2d",
    "cpu_conv_backend",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "data",
    "global_avg_pool1d",
    "global_avg_pool2d",
    "global_avg_pool3d",
    "global_max_pool1d",
    "global_max_pool2d",
    "global_max_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "models",
    "nn",
    "pool2d",
    "train",
)
