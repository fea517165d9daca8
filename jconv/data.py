"""Real data sets (no download at run time unless asked) and a prefetching batch iterator."""

from jconv._src.data import DATASETS as DATASETS
from jconv._src.data import DataError as DataError
from jconv._src.data import Dataset as Dataset
from jconv._src.data import batches as batches
from jconv._src.data import digits as digits
from jconv._src.data import epoch_order as epoch_order
from jconv._src.data import fashion_mnist as fashion_mnist
from jconv._src.data import load as load
from jconv._src.data import mnist as mnist
from jconv._src.data import mnist5k as mnist5k
from jconv._src.data import read_idx as read_idx

__all__ = ("DATASETS", "DataError", "Dataset", "batches", "digits", "epoch_order", "fashion_mnist",
           "load", "mnist", "mnist5k", "read_idx")
