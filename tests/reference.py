"""A slow, obviously correct NumPy reference: the seeds' loops, generalised.

d2l's ``corr2d`` and ``pool2d`` loop over output positions and reduce one window at a time.
These functions do exactly that, with stride, per-side padding, dilation, groups, ceil_mode and
count_include_pad added, in float64, NCHW only. They are kept out of the package (which has no
Python loop over pixels) and serve the tests as the oracle.
"""

from __future__ import annotations

import math

import numpy as np


def corr2d(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The seed's loop, verbatim in NumPy."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def conv2d(x, weight, bias=None, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """NCHW cross-correlation; ``padding`` per side ``((top, bottom), (left, right))``."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    n, c, _, _ = x.shape
    o, cg, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    ho = (xp.shape[2] - eh) // strides[0] + 1
    wo = (xp.shape[3] - ew) // strides[1] + 1
    og = o // groups
    y = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                r, s = i * strides[0], j * strides[1]
                window = xp[:, g * cg : (g + 1) * cg, r : r + eh : dilation[0], s : s + ew : dilation[1]]
                y[:, oc, i, j] = (window * weight[oc]).sum(axis=(1, 2, 3))
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def _out_size(size, k, s, lo, hi, ceil_mode):
    if ceil_mode:
        n = math.ceil((size + lo + hi - k) / s) + 1
        if (n - 1) * s >= size + lo:
            n -= 1
        return n
    return (size + lo + hi - k) // s + 1


def pool2d(x, pool, strides, padding, mode, ceil_mode=False, count_include_pad=True):
    """NCHW max / avg pooling with PyTorch's edge rules; windows clipped to the input."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = padding
    ho = _out_size(h, pool[0], strides[0], pt, pb, ceil_mode)
    wo = _out_size(w, pool[1], strides[1], pl, pr, ceil_mode)
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * strides[0] - pt, j * strides[1] - pl
            r1, c1 = r0 + pool[0], c0 + pool[1]
            window = x[:, :, max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)]
            if mode == "max":
                y[:, :, i, j] = window.max(axis=(2, 3))
            elif count_include_pad:
                area = (min(r1, h + pb) - r0) * (min(c1, w + pr) - c0)
                y[:, :, i, j] = window.sum(axis=(2, 3)) / area
            else:
                y[:, :, i, j] = window.mean(axis=(2, 3))
    return y
