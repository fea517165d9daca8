"""N-d convolution (cross-correlation) and its adjoint, the transposed convolution.

One implementation for every rank: :func:`conv` takes the rank from the weight
(``(O, C // groups, *kernel)``), :func:`conv1d` / :func:`conv2d` / :func:`conv3d` fix it. On
CPU, float32 convolutions run on oneDNN where jconv's extension was built
(:mod:`jconv._src.onednn`, :func:`jconv.cpu_conv_backend`), 2-D 1x1 ones as matmuls; without it,
on XLA with measured CPU formulations (1x1 as matmuls, per-offset weight gradient, 3-D as 2-D).
:func:`conv_transpose` is defined as the vector-Jacobian product of :func:`conv` with
respect to its input, so it is the exact adjoint whatever the geometry.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jconv._src import checks, onednn
from jconv._src.platform import on_cpu

_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")


class ConvGeometry(NamedTuple):
    """Static geometry of one convolution, derived from shapes and options alone."""

    padding: checks.Padding  # per-side padding actually applied, per spatial axis
    out_size: tuple[int, ...]  # output spatial size


def conv_geometry(
    fn: str,
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    padding: Any,
    dilation: tuple[int, ...],
) -> ConvGeometry:
    """Normalises padding and computes the output size; raises if the kernel does not fit."""
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    pad = checks.padding(fn, padding, in_size, eff, strides)
    out = []
    for size, (lo, hi), e, s in zip(in_size, pad, eff, strides):
        padded = size + lo + hi
        if padded < e:
            raise ValueError(
                f"{fn}: the kernel (size {tuple(kernel)}, dilation {tuple(dilation)}: extent {eff}) "
                f"is larger than the padded input (spatial size {tuple(in_size)}, padding {pad})"
            )
        out.append((padded - e) // s + 1)
    return ConvGeometry(pad, tuple(out))


def _check_precision(fn: str, precision: Any) -> Any:
    def one(p: Any) -> Any:
        if p is None or isinstance(p, lax.Precision):
            return p
        if isinstance(p, str) and p.lower() in _PRECISIONS:
            return p
        raise ValueError(
            f"{fn}: `precision` must be None, a jax.lax.Precision, one of {_PRECISIONS} "
            f"or a pair of those, got {precision!r}"
        )

    if isinstance(precision, (tuple, list)) and len(precision) == 2:
        return tuple(one(p) for p in precision)
    return one(precision)


class _ConvSpec(NamedTuple):
    """Everything static about one convolution call (hashable: a ``custom_jvp`` argument)."""

    strides: tuple[int, ...]
    geometry: ConvGeometry
    dilation: tuple[int, ...]
    layout: str
    precision: Any


# The matmul forms broadcast the weight over the batch, ``(N, O, C)``, and their weight gradient
# sums ``(N, O, C)`` per-example products: beyond this many elements (64 MiB in float32) that
# memory is not worth it; XLA's convolution needs none.
_MAX_BATCHED_WEIGHTS = 2**24


def _onednn_applies(x: jax.Array, weight: jax.Array) -> bool:
    """Whether a convolution on CPU runs on oneDNN (:mod:`jconv._src.onednn`): float32, non-empty,
    and the backend available and not switched off."""
    return (x.dtype == weight.dtype == jnp.float32 and x.size > 0 and weight.size > 0
            and onednn.cpu_conv_backend() == "onednn")


def _onednn_params(spec: _ConvSpec, groups: int) -> onednn.Params:
    lo, hi = zip(*spec.geometry.padding)
    return onednn.Params(spec.strides, spec.dilation, lo, hi, groups, checks.channels_last(spec.layout))


def _conv_impl(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int) -> jax.Array:
    """The formulation behind :func:`conv` (batched input, checked arguments).

    On CPU, float32, where the extension is available (:func:`_onednn_applies`): oneDNN's
    convolution (:func:`_on_onednn`) for every rank, except the 2-D 1x1 matmuls in
    :func:`_conv2d_impl`. oneDNN beat the best XLA formulation 2-7x on the ``jconv bench`` rows
    "conv 3x3", "LeNet conv1/conv2", "conv3d" and "conv_transpose2d" (its "jconv, XLA convs" column),
    and tied on "conv1d" (kept on oneDNN); ``BENCHMARKS.md`` has the numbers.

    Otherwise 2-D goes through :func:`_conv2d_impl`'s measured choices, 3-D on CPU through
    :func:`_conv3d_as_2d`, the rest through :func:`_conv_xla` (1-D: XLA's measured 0.9-1.7x
    PyTorch's time on (32, 64, 1024) k5, fwd + bwd)."""
    if weight.ndim == 4:
        return _conv2d_impl(x, weight, spec, groups)
    xla = lambda x, w: _conv_xla(x, w, spec, groups)  # noqa: E731
    if _onednn_applies(x, weight):
        return _on_onednn(x, weight, spec, groups)
    if weight.ndim == 5:
        return on_cpu(lambda x, w: _conv3d_as_2d(x, w, spec, groups), xla, x, weight)
    return xla(x, weight)


def _on_onednn(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int) -> jax.Array:
    """oneDNN's convolution on CPU (XLA's on other platforms); its derivatives of every order
    are oneDNN's input- and weight-gradient kernels (:mod:`jconv._src.onednn`)."""
    p = _onednn_params(spec, groups)
    return on_cpu(lambda x, w: onednn.fwd(x, w, p), lambda x, w: _conv_xla(x, w, spec, groups), x, weight)


def _conv3d_as_2d(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int) -> jax.Array:
    """A 3-D convolution as one 2-D convolution per depth offset ``a`` of the kernel, over the
    depth slices ``x_pad[:, a*dd :: sd]`` folded into the batch, summed.

    XLA:CPU's 3-D convolutions run at ~20 GFLOP/s on 2 cores; its 2-D ones (with jconv's 2-D
    paths) several times faster. Measured, fwd + bwd, float32, 2 CPU cores (ms, this / XLA's
    3-D): (4, 16, 16, 32, 32) 3x3x3 16->16 'same' 25 / 128; (2, 32, 8, 28, 28) 3x3x3 stride 2
    32->64 4.2 / 143; 1x1x1 2.7 / 4.7. Gradients follow by differentiating the slices and the
    2-D convolutions.
    """
    last = checks.channels_last(spec.layout)
    xt = x if last else jnp.transpose(x, (0, 2, 1, 3, 4))  # depth next to the batch: (N, D, ...)
    xt = jnp.pad(xt, [(0, 0), spec.geometry.padding[0]] + [(0, 0)] * 3)
    (od, oh, ow), sd, dd = spec.geometry.out_size, spec.strides[0], spec.dilation[0]
    layout2 = "NHWC" if last else "NCHW"
    spec2 = _ConvSpec(spec.strides[1:], ConvGeometry(spec.geometry.padding[1:], (oh, ow)), spec.dilation[1:],
                      layout2, spec.precision)
    terms = []
    for a in range(weight.shape[2]):
        xs = lax.slice_in_dim(xt, a * dd, a * dd + (od - 1) * sd + 1, sd, axis=1)
        xs = xs.reshape((xs.shape[0] * od,) + xs.shape[2:])
        terms.append(_conv2d_impl(xs, weight[:, :, a], spec2, groups))
    y = functools.reduce(lax.add, terms)
    y = y.reshape((x.shape[0], od) + y.shape[1:])
    return y if last else jnp.transpose(y, (0, 2, 1, 3, 4))


def _conv2d_impl(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int) -> jax.Array:
    """The 2-D formulation, chosen per shape from measurements on 2 CPU cores (float32, ms,
    jconv vs. PyTorch 2.13 in one process; ``BENCHMARKS.md`` has the rest):

    * 1x1 kernels on CPU: :func:`_conv_offsets` with its one offset, a batched matmul
      ``weight @ x[n]``, and so are both its gradients: on (16, 64, 56, 56) 64->64 forward
      5.4 against XLA's convolution 12.2, input gradient 4.7 against 13.0, weight gradient
      7.9 against 45.3 (kept where oneDNN is available: oneDNN lost on the "conv 1x1" row).
    * Other float32 kernels on CPU where the extension is available: :func:`_on_onednn`.
    * Larger kernels on CPU, NCHW, where :func:`_offsets_win`: :func:`_conv_offsets_wgrad`,
      XLA's convolution whose weight gradient is one batched matmul per kernel offset (forward +
      backward of the 3x3 case: 175 against 241. In NHWC it gained nothing: 224 against 219;
      1x1 in NHWC: 24 against 75).
    * Everything else (grouped convolutions, other backends, and batches where the
      ``(N, O, C)`` per-example weight copies and products of the matmul forms would pass
      :data:`_MAX_BATCHED_WEIGHTS` elements): :func:`_conv_xla`.
    """
    out_ch, c, kh, kw = weight.shape
    small = x.shape[0] * out_ch * c <= _MAX_BATCHED_WEIGHTS
    xla = lambda x, w: _conv_xla(x, w, spec, groups)  # noqa: E731
    if groups == 1 and small and (kh, kw) == (1, 1):  # also where oneDNN is available: faster
        # on the "conv 1x1" bench row and in NHWC (BENCHMARKS.md, session 6)
        return on_cpu(lambda x, w: _conv_offsets(_taps(x, spec, (1, 1)), w, spec), xla, x, weight)
    if _onednn_applies(x, weight):
        return _on_onednn(x, weight, spec, groups)
    if groups == 1 and small:
        if spec.layout == "NCHW" and _offsets_win(c, out_ch, spec.geometry.out_size):
            return on_cpu(lambda x, w: _conv_offsets_wgrad(x, w, spec), xla, x, weight)
    return xla(x, weight)


def _offsets_win(c: int, out_ch: int, out_size: checks.Pair) -> bool:
    """Whether the per-offset weight gradient beats XLA:CPU's. Weight gradient alone of a
    3x3 stride-1 convolution after a ReLU, 2 CPU cores, ms (offsets / XLA):

    ===================================  ===========  =====
    input, channels in -> out            offsets/XLA  ratio
    ===================================  ===========  =====
    (16, 64, 56, 56), 64 -> 64           67-82 / 113  0.67
    (16, 32, 56, 56), 32 -> 64           50 / 62      0.80
    (16, 128, 28, 28), 128 -> 128        51 / 63      0.82
    (32, 32, 56, 56), 32 -> 32           76 / 68      1.11
    (32, 16, 56, 56), 16 -> 16           39 / 24      1.65
    (16, 256, 14, 14), 256 -> 256        82 / 28      2.89
    (256, 16, 14, 14), 5x5 16 -> 32      48 / 38      1.25
    LeNet's 5x5 6 -> 16 in a train step  +8 ms per step
    ===================================  ===========  =====

    The matmuls per offset are ``(O, H'W') @ (H'W', C)`` per example: they pay off when both
    the output (``C * O``) and the contraction (``H' * W'``) are large.
    """
    return c * out_ch >= 2048 and out_size[0] * out_size[1] >= 784


def _conv_xla(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int = 1) -> jax.Array:
    """One ``lax.conv_general_dilated`` (the reference formulation).

    Strided: the input is padded explicitly and cropped to the rows and columns the windows
    read, then convolved with VALID padding. On jaxlib 0.10.2 (CPU) the input gradient of a
    strided ``conv_general_dilated`` with implicit padding can abort the process inside XLA's
    algebraic simplifier ("Window dimensions do not match RHS shape"); the explicit form does
    not (``tests/test_grads.py``). Stride 1 (every padded row is read) passes the padding to
    XLA: an explicit pad there made the forward + backward of a 3x3 64->64 convolution on
    (16, 64, 56, 56) 1.6x slower on 2 CPU cores (305 ms against 187 ms).
    """
    padding: Any = spec.geometry.padding
    n = weight.ndim - 2
    if any(s != 1 for s in spec.strides):
        x = _pad(x, spec)
        for axis, out, s, k, d in zip(
            checks.spatial_axes(spec.layout), spec.geometry.out_size, spec.strides, weight.shape[2:], spec.dilation
        ):
            x = lax.slice_in_dim(x, 0, (out - 1) * s + (k - 1) * d + 1, axis=axis)
        padding = "VALID"
    return lax.conv_general_dilated(
        x,
        weight,
        window_strides=spec.strides,
        padding=padding,
        rhs_dilation=spec.dilation,
        feature_group_count=groups,
        dimension_numbers=(spec.layout, "OI" + "DHW"[3 - n:], spec.layout),
        precision=spec.precision,
    )


def _pad(x: jax.Array, spec: _ConvSpec) -> jax.Array:
    """``x`` with the convolution's zero padding applied to its spatial axes."""
    widths = [(0, 0)] * x.ndim
    for axis, lohi in zip(checks.spatial_axes(spec.layout), spec.geometry.padding):
        widths[axis] = lohi
    return jnp.pad(x, widths)


def _taps(x: jax.Array, spec: _ConvSpec, kernel_hw: checks.Pair) -> list[jax.Array]:
    """For each kernel offset ``(a, b)`` in row-major order, the input rows and columns it
    meets: ``x_pad[..., a*dh :: sh, b*dw :: sw]`` cut to the output size (``(N, C, H', W')``
    in NCHW, ``(N, H', W', C)`` in NHWC). ``conv2d`` is ``sum_ab weight[:, :, a, b] @ tap``."""
    h_axis, w_axis = checks.spatial_axes(spec.layout)
    xp = _pad(x, spec)
    (oh, ow), (sh, sw), (dh, dw) = spec.geometry.out_size, spec.strides, spec.dilation
    taps = []
    for a in range(kernel_hw[0]):
        for b in range(kernel_hw[1]):
            start, limit, step = [0] * 4, list(xp.shape), [1] * 4
            start[h_axis], limit[h_axis], step[h_axis] = a * dh, a * dh + (oh - 1) * sh + 1, sh
            start[w_axis], limit[w_axis], step[w_axis] = b * dw, b * dw + (ow - 1) * sw + 1, sw
            taps.append(lax.slice(xp, start, limit, step))
    return taps


def _conv_offsets(taps: list[jax.Array], weight: jax.Array, spec: _ConvSpec) -> jax.Array:
    """``conv2d(x, weight)`` from the taps of ``x``: one batched matmul per kernel offset,
    ``weight[:, :, a, b]`` broadcast over the batch, so that the transpose (the weight
    gradient) is ``sum_n dy[n] @ tap[n]^T`` per offset: batch-``n`` matmuls, then a sum."""
    n, (oh, ow) = taps[0].shape[0], spec.geometry.out_size
    out, c, kh, kw = weight.shape
    terms = []
    for t, tap in enumerate(taps):
        wt = jnp.broadcast_to(weight[:, :, t // kw, t % kw], (n, out, c))
        if spec.layout == "NCHW":  # (n, O, C) @ (n, C, P) -> (n, O, P)
            dims = (((2,), (1,)), ((0,), (0,)))
            y = lax.dot_general(wt, tap.reshape(n, c, oh * ow), dims, spec.precision)
            terms.append(y.reshape(n, out, oh, ow))
        else:  # (n, P, C) . (n, O, C) -> (n, P, O)
            dims = (((2,), (2,)), ((0,), (0,)))
            y = lax.dot_general(tap.reshape(n, oh * ow, c), wt, dims, spec.precision)
            terms.append(y.reshape(n, oh, ow, out))
    return functools.reduce(lax.add, terms)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _conv_offsets_wgrad(x: jax.Array, weight: jax.Array, spec: _ConvSpec) -> jax.Array:
    """XLA's convolution, differentiated with the weight gradient of :func:`_conv_offsets`.

    The forward and the input gradient stay XLA's (the offsets' matmuls lose there: 89
    against 40-52 ms forward, 139 against 45-48 ms input gradient on (16, 64, 56, 56) 3x3
    64->64). The price is memory: the derivative keeps the ``kh * kw`` taps of ``x``.
    ``tests/test_fast_paths.py`` checks values and first and second derivatives against
    :func:`_conv_xla`.
    """
    return _conv_xla(x, weight, spec)


@functools.partial(_conv_offsets_wgrad.defjvp, symbolic_zeros=True)
def _conv_offsets_wgrad_jvp(
    spec: _ConvSpec, primals: tuple, tangents: tuple
) -> tuple[jax.Array, jax.Array]:
    """``d conv(x, w) = conv(dx, w) + conv(x, dw)``; JAX transposes each term into its
    gradient. A symbolic-zero tangent (the data of a first layer, frozen weights) costs
    nothing."""
    (x, weight), (dx, dw) = primals, tangents
    y = _conv_offsets_wgrad(x, weight, spec)
    terms = []
    if not isinstance(dx, SymbolicZero):
        terms.append(_conv_xla(dx, weight, spec))
    if not isinstance(dw, SymbolicZero):
        terms.append(_conv_offsets(_taps(x, spec, weight.shape[2:]), dw, spec))
    return y, functools.reduce(lax.add, terms) if terms else jnp.zeros_like(y)


_LETTERS = {1: "W", 2: "HW", 3: "DHW"}


def _weight_rank(fn: str, weight: jax.Array, rank: int | None, what: str = "out_channels, in_channels // groups") -> int:
    """The spatial rank: ``rank`` if the op fixes it (checked against ``weight``), else from
    ``weight.ndim - 2``."""
    n = weight.ndim - 2 if rank is None else rank
    if n not in (1, 2, 3) or weight.ndim != n + 2:
        kernel = ", ".join(f"k{c.lower()}" for c in _LETTERS.get(n, "HW"))
        need = f"{n + 2}-D ({what}, {kernel})" if rank is not None else "3-D, 4-D or 5-D (1-, 2- or 3-D kernels)"
        raise ValueError(f"{fn}: `weight` must be {need}, got shape {tuple(weight.shape)}")
    return n


def _conv_args(fn: str, x: Any, weight: Any, bias: Any, strides: Any, dilation: Any, groups: Any, layout: Any,
               precision: Any, rank: int | None, transposed: bool = False) -> tuple:
    """Checks the arguments shared by :func:`conv` and :func:`conv_transpose`; returns
    ``(x batched, weight, bias, unbatched, rank, strides, dilation, layout, precision, dtype)``."""
    x = checks.array(fn, "x", x)
    weight = checks.array(fn, "weight", weight)
    n = _weight_rank(fn, weight, rank, "in_channels, out_channels // groups" if transposed else
                     "out_channels, in_channels // groups")
    layout = checks.layout(fn, layout, n)
    unbatched = checks.activation_ranks(fn, x, rank=n)
    if not checks.is_int(groups):
        raise TypeError(f"{fn}: `groups` must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{fn}: `groups` must be >= 1, got {groups!r}")
    strides_ = checks.ntuple(fn, "strides", strides, n)
    dilation_ = checks.ntuple(fn, "dilation", dilation, n)
    precision = _check_precision(fn, precision)
    if unbatched:
        x = x[None]
    c_in = checks.channels(x.shape, layout)
    # conv: weight (O, C // G, *k); conv_transpose: weight (C, O // G, *k), C the input channels.
    c_w = weight.shape[0] if transposed else weight.shape[1] * groups
    out_ch = weight.shape[1] * groups if transposed else weight.shape[0]
    if c_in % groups:
        raise ValueError(f"{fn}: `groups` (={groups}) must divide the input channels (={c_in})")
    if (weight.shape[0]) % groups:
        raise ValueError(
            f"{fn}: `groups` (={groups}) must divide the {'input' if transposed else 'output'} channels "
            f"weight.shape[0] (={weight.shape[0]})"
        )
    if c_in != c_w:
        axis, need = (0, c_in) if transposed else (1, c_in // groups)
        what = "in_channels" if transposed else "in_channels // groups"
        raise ValueError(
            f"{fn}: channel mismatch: `x` has {c_in} channels ({layout}, shape "
            f"{tuple(x.shape)}), so `weight` needs {what} = {need} "
            f"at axis {axis}, got weight shape {tuple(weight.shape)}"
        )
    arrays = [x, weight]
    if bias is not None:
        bias = checks.array(fn, "bias", bias)
        if tuple(bias.shape) != (out_ch,):
            raise ValueError(
                f"{fn}: `bias` must have shape (out_channels,) = ({out_ch},), "
                f"got {tuple(bias.shape)}"
            )
        arrays.append(bias)
    dtype = checks.float_dtype(*arrays)
    x, weight = checks.to_float(x, dtype), checks.to_float(weight, dtype)
    bias = None if bias is None else checks.to_float(bias, dtype)
    return x, weight, bias, unbatched, n, strides_, dilation_, layout, precision


def _add_bias(y: jax.Array, bias: jax.Array | None, layout: str) -> jax.Array:
    if bias is None:
        return y
    shape = [1] * y.ndim
    shape[-1 if checks.channels_last(layout) else 1] = bias.shape[0]
    return y + bias.reshape(shape)


def _conv(fn: str, rank: int | None, x: Any, weight: Any, bias: Any, strides: Any, padding: Any,
          dilation: Any, groups: Any, layout: Any, precision: Any) -> jax.Array:
    x, weight, bias, unbatched, n, strides_, dilation_, layout, precision = _conv_args(
        fn, x, weight, bias, strides, dilation, groups, layout, precision, rank)
    geometry = conv_geometry(fn, checks.spatial_dims(x.shape, layout), weight.shape[2:], strides_, padding,
                             dilation_)
    y = _conv_impl(x, weight, _ConvSpec(strides_, geometry, dilation_, layout, precision), groups)
    y = _add_bias(y, bias, layout)
    return y[0] if unbatched else y


def conv(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides: int | tuple[int, ...] = 1,
    padding: Any = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    layout: str | None = None,
    precision: Any = None,
) -> jax.Array:
    """N-d cross-correlation (1-, 2- or 3-D, the rank from ``weight.ndim - 2``), as PyTorch's
    ``conv1d`` / ``conv2d`` / ``conv3d`` compute it.

    Args:
      x: ``(N, C, *spatial)`` (channels first: ``"NCW"``, ``"NCHW"``, ``"NCDHW"``, the default)
        or ``(N, *spatial, C)`` (``"NWC"``, ``"NHWC"``, ``"NDHWC"``); or unbatched, without ``N``.
      weight: ``(O, C // groups, *kernel)`` whatever the activation layout.
      bias: ``(O,)`` or ``None``.
      strides, dilation: an int or one per spatial axis, each >= 1.
      padding: an int, one per axis, per-side pairs per axis, ``"valid"`` or ``"same"``.
      groups: number of channel groups; must divide ``C`` and ``O``.
      layout: ``None`` (channels first) or one of the rank's layout names.
      precision: passed to ``lax.conv_general_dilated``.

    Returns:
      ``(N, O, *out)`` in the layout of ``x``, ``out = (size + lo + hi - d * (k - 1) - 1) // s + 1``
      per axis. Float inputs keep their (promoted) dtype; integer inputs give float32; complex
      inputs are refused (``TypeError``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.conv(jnp.arange(5.0).reshape(1, 1, 5), jnp.array([[[1.0, -1.0]]]))
      Array([[[-1., -1., -1., -1.]]], dtype=float32)
      >>> jc.conv(jnp.ones((2, 3, 4, 8, 8)), jnp.ones((6, 3, 3, 3, 3)), padding=1).shape
      (2, 6, 4, 8, 8)
    """
    return _conv("conv", None, x, weight, bias, strides, padding, dilation, groups, layout, precision)


def conv1d(x: jax.Array, weight: jax.Array, bias: jax.Array | None = None, *, strides: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, layout: str = "NCW", precision: Any = None) -> jax.Array:
    """1-D cross-correlation: :func:`conv` with ``x`` ``(N, C, W)`` (``"NCW"``) or ``(N, W, C)``
    (``"NWC"``) and ``weight`` ``(O, C // groups, kw)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.conv1d(jnp.ones((2, 4, 16)), jnp.ones((8, 4, 5)), strides=2, padding=2).shape
      (2, 8, 8)
    """
    return _conv("conv1d", 1, x, weight, bias, strides, padding, dilation, groups, layout, precision)


def conv3d(x: jax.Array, weight: jax.Array, bias: jax.Array | None = None, *, strides: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, layout: str = "NCDHW", precision: Any = None) -> jax.Array:
    """3-D cross-correlation: :func:`conv` with ``x`` ``(N, C, D, H, W)`` (``"NCDHW"``) or
    ``(N, D, H, W, C)`` (``"NDHWC"``) and ``weight`` ``(O, C // groups, kd, kh, kw)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.conv3d(jnp.ones((1, 2, 4, 8, 8)), jnp.ones((3, 2, 3, 3, 3)), padding="same").shape
      (1, 3, 4, 8, 8)
    """
    return _conv("conv3d", 3, x, weight, bias, strides, padding, dilation, groups, layout, precision)


def conv2d(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides: int | checks.Pair = 1,
    padding: Any = 0,
    dilation: int | checks.Pair = 1,
    groups: int = 1,
    layout: str = "NCHW",
    precision: Any = None,
) -> jax.Array:
    """2-D cross-correlation, as Gluon's ``Conv2D`` and PyTorch's ``conv2d`` compute it.

    ``y[n, o, i, j] = bias[o] + sum_{c, a, b} x_pad[n, g*C/G + c, i*sh + a*dh, j*sw + b*dw]
    * weight[o, c, a, b]`` where ``g`` is the group of output channel ``o``.

    Args:
      x: activations ``(N, C, H, W)`` (``layout="NCHW"``) or ``(N, H, W, C)`` (``"NHWC"``);
        the unbatched forms ``(C, H, W)`` / ``(H, W, C)`` are accepted too.
      weight: ``(O, C // groups, kh, kw)`` (OIHW, whatever the activation layout).
      bias: ``(O,)`` or ``None``.
      strides: int or ``(sh, sw)``, each >= 1.
      padding: int, ``(ph, pw)``, ``((top, bottom), (left, right))``, ``"valid"`` or ``"same"``
        (output ``ceil(H / sh)``; odd totals put the extra row/column at the bottom/right).
      dilation: int or ``(dh, dw)``, each >= 1.
      groups: number of channel groups; must divide ``C`` and ``O``.
      layout: ``"NCHW"`` (default, as Gluon) or ``"NHWC"``.
      precision: passed to ``lax.conv_general_dilated`` (e.g. ``"highest"`` to turn off TF32
        on GPU or bf16 passes on TPU).

    Returns:
      ``(N, O, H', W')`` (or ``(N, H', W', O)``; unbatched in, unbatched out) with
      ``H' = (H + top + bottom - dh*(kh-1) - 1) // sh + 1``, likewise ``W'``. Float inputs keep
      their (promoted) dtype; integer inputs give float32.

    Raises:
      ValueError: wrong ranks, channel mismatch, groups not dividing, non-positive strides or
        dilation, negative padding, a kernel larger than the padded input, a bias of the wrong
        shape, an unknown layout, padding string or precision.
      TypeError: a non-array ``x`` / ``weight`` / ``bias`` or non-integer sizes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> x = jnp.arange(9.0).reshape(1, 1, 3, 3)
      >>> w = jnp.array([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
      >>> jc.conv2d(x, w)[0, 0]
      Array([[19., 25.],
             [37., 43.]], dtype=float32)
      >>> jc.conv2d(jnp.ones((1, 1, 8, 8)), jnp.ones((1, 1, 3, 3)), padding=1, strides=2).shape
      (1, 1, 4, 4)
    """
    return _conv("conv2d", 2, x, weight, bias, strides, padding, dilation, groups, layout, precision)


def _conv_transpose_taps(y: jax.Array, weight: jax.Array, spec: _ConvSpec, out: tuple[int, ...],
                         groups: int) -> jax.Array:
    """A strided transposed convolution written out (col2im): for each kernel offset ``a``,
    ``weight[:, :, a]`` contracts the channels of ``y`` (a matmul) and the result is added into
    the output at rows ``i * s + a * d - lo`` (``lax.pad`` with interior padding ``s - 1``;
    negative edges crop). The same linear map as the vjp of :func:`conv` (the adjoint tests
    check it), without XLA:CPU's input-dilated convolution, which ran at ~10 GFLOP/s.

    Measured, fwd + bwd, float32, 2 CPU cores (ms, this / vjp through XLA): (16, 128, 16, 16)
    4x4 stride 2 pad 1 128->64 74 / 336; (8, 64, 32, 32) 2x2 stride 2 64->32 8.7 / 41;
    (4, 16, 8, 16, 16) 4x4x4 stride 2 16->8 207 / 433. Stride 1 keeps the vjp (an ordinary
    convolution of ``y``).
    """
    last = checks.channels_last(spec.layout)
    c, og = weight.shape[:2]
    wg = weight.reshape((groups, c // groups, og) + weight.shape[2:])
    if last:
        yg, eq = y.reshape(y.shape[:-1] + (groups, c // groups)), "n...gc,gco->n...go"
    else:
        yg, eq = y.reshape((y.shape[0], groups, c // groups) + y.shape[2:]), "ngc...,gco->ngo..."
    size = checks.spatial_dims(y.shape, spec.layout)
    axes = checks.spatial_axes(spec.layout)
    zero = np.array(0, y.dtype)
    terms = []
    for tap in itertools.product(*(range(k) for k in weight.shape[2:])):
        z = jnp.einsum(eq, yg, wg[(slice(None),) * 3 + tap], precision=spec.precision)
        z = z.reshape(y.shape[:-1] + (groups * og,)) if last else z.reshape((y.shape[0], groups * og) + y.shape[2:])
        cfg = [(0, 0, 0)] * z.ndim
        for ax, a, s, d, (lo, _), n, o in zip(axes, tap, spec.strides, spec.dilation, spec.geometry.padding, size, out):
            low = a * d - lo
            cfg[ax] = (low, o - low - (n - 1) * s - 1, s - 1)
        terms.append(lax.pad(z, zero, cfg))
    return functools.reduce(lax.add, terms)


def _transpose_geometry(fn: str, in_size: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                        padding: Any, output_padding: tuple[int, ...], dilation: tuple[int, ...]
                        ) -> tuple[tuple[int, ...], ConvGeometry]:
    """The output size of a transposed convolution and the geometry of the convolution it is
    the adjoint of (that convolution's input is the output here)."""
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    for op, s, d in zip(output_padding, strides, dilation):
        if op >= max(s, d):
            raise ValueError(
                f"{fn}: `output_padding` must be smaller than max(stride, dilation) in each dimension, "
                f"got output_padding {output_padding} for strides {strides} and dilation {dilation}"
            )
    if isinstance(padding, str) and padding.lower() == "same":
        if any(output_padding):
            raise ValueError(f"{fn}: `output_padding` must be 0 with padding='same', got {output_padding}")
        out = tuple(size * s for size, s in zip(in_size, strides))  # the convolution's 'same' input
        pad = checks.padding(fn, padding, out, eff, strides)
    else:
        pad = checks.padding(fn, padding, in_size, eff, strides)
        out = tuple((size - 1) * s - lo - hi + e + op
                    for size, s, (lo, hi), e, op in zip(in_size, strides, pad, eff, output_padding))
    if min(out) < 1:
        raise ValueError(
            f"{fn}: the output would be empty: input spatial size {tuple(in_size)}, kernel {tuple(kernel)}, "
            f"strides {strides}, padding {pad}, dilation {dilation} and output_padding {output_padding} give "
            f"{out}; use less padding"
        )
    full = tuple((o + lo + hi - e) // s + 1 for o, (lo, hi), e, s in zip(out, pad, eff, strides))
    return out, ConvGeometry(pad, full)


def _conv_transpose(fn: str, rank: int | None, y: Any, weight: Any, bias: Any, strides: Any, padding: Any,
                    output_padding: Any, dilation: Any, groups: Any, layout: Any, precision: Any) -> jax.Array:
    y, weight, bias, unbatched, n, strides_, dilation_, layout, precision = _conv_args(
        fn, y, weight, bias, strides, dilation, groups, layout, precision, rank, transposed=True)
    output_padding_ = checks.ntuple(fn, "output_padding", output_padding, n, minimum=0)
    in_size = checks.spatial_dims(y.shape, layout)
    out, geometry = _transpose_geometry(fn, in_size, weight.shape[2:], strides_, padding, output_padding_,
                                        dilation_)
    spec = _ConvSpec(strides_, geometry, dilation_, layout, precision)
    axes = checks.spatial_axes(layout)
    x_shape = list(y.shape)
    for a, o in zip(axes, out):
        x_shape[a] = o
    x_shape[-1 if checks.channels_last(layout) else 1] = weight.shape[1] * groups

    def adjoint(y: jax.Array, weight: jax.Array) -> jax.Array:
        def forward(x: jax.Array) -> jax.Array:  # the convolution, cut to y's size (output_padding >= stride)
            z = _conv_impl(x, weight, spec, groups)
            limit = list(z.shape)
            for a, size in zip(axes, in_size):
                limit[a] = size
            return lax.slice(z, [0] * z.ndim, limit)

        return jax.vjp(forward, jnp.zeros(x_shape, y.dtype))[1](y)[0]

    if any(s > 1 for s in strides_) and not _onednn_applies(y, weight):
        x = on_cpu(lambda y, w: _conv_transpose_taps(y, w, spec, out, groups), adjoint, y, weight)
    else:
        x = adjoint(y, weight)
    x = _add_bias(x, bias, layout)
    return x[0] if unbatched else x


def conv_transpose(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides: int | tuple[int, ...] = 1,
    padding: Any = 0,
    output_padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    layout: str | None = None,
    precision: Any = None,
) -> jax.Array:
    """N-d transposed convolution: the exact adjoint of :func:`conv` with the same arguments
    (PyTorch's ``conv_transpose1d/2d/3d``, Gluon's ``Conv2DTranspose``).

    ``conv_transpose(y, w)`` is the gradient of ``<conv(x, w), y>`` with respect to ``x``, for
    ``x`` of spatial size ``(size - 1) * s - (lo + hi) + d * (k - 1) + output_padding + 1`` per
    axis (``output_padding`` picks among the input sizes that a strided convolution maps to the
    same output size; ``0 <= output_padding < max(stride, dilation)``). ``padding="same"`` gives
    ``size * s`` (TensorFlow's and Flax's rule).

    Args:
      x: ``(N, C, *spatial)`` (or channels last, or unbatched), ``C`` the input channels.
      weight: ``(C, O // groups, *kernel)``, as PyTorch and Gluon store transposed weights
        (the weight of the :func:`conv` it is the adjoint of).
      bias: ``(O,)`` or ``None``.
      strides, padding, dilation, groups, layout, precision: as :func:`conv` (of the adjoint).
      output_padding: an int or one per spatial axis, extra rows at the end.

    Returns:
      ``(N, O, *out)`` in the layout of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.conv_transpose(jnp.ones((1, 1, 2, 2)), jnp.ones((1, 1, 2, 2)), strides=2)[0, 0]
      Array([[1., 1., 1., 1.],
             [1., 1., 1., 1.],
             [1., 1., 1., 1.],
             [1., 1., 1., 1.]], dtype=float32)
      >>> jc.conv_transpose(jnp.ones((1, 4, 8, 8)), jnp.ones((4, 2, 3, 3)), strides=2, padding=1,
      ...                   output_padding=1).shape
      (1, 2, 16, 16)
    """
    return _conv_transpose("conv_transpose", None, x, weight, bias, strides, padding, output_padding, dilation,
                           groups, layout, precision)


def conv_transpose1d(x: jax.Array, weight: jax.Array, bias: jax.Array | None = None, *, strides: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                     layout: str = "NCW", precision: Any = None) -> jax.Array:
    """1-D :func:`conv_transpose`: ``x`` ``(N, C, W)`` (or ``"NWC"``), ``weight`` ``(C, O // groups, kw)``."""
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, strides, padding, output_padding, dilation,
                           groups, layout, precision)


def conv_transpose2d(x: jax.Array, weight: jax.Array, bias: jax.Array | None = None, *, strides: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                     layout: str = "NCHW", precision: Any = None) -> jax.Array:
    """2-D :func:`conv_transpose`: ``x`` ``(N, C, H, W)`` (or ``"NHWC"``), ``weight``
    ``(C, O // groups, kh, kw)``; the up-sampling layer of FCNs, U-Nets and GAN generators."""
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, strides, padding, output_padding, dilation,
                           groups, layout, precision)


def conv_transpose3d(x: jax.Array, weight: jax.Array, bias: jax.Array | None = None, *, strides: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                     layout: str = "NCDHW", precision: Any = None) -> jax.Array:
    """3-D :func:`conv_transpose`: ``x`` ``(N, C, D, H, W)`` (or ``"NDHWC"``), ``weight``
    ``(C, O // groups, kd, kh, kw)``."""
    return _conv_transpose("conv_transpose3d", 3, x, weight, bias, strides, padding, output_padding, dilation,
                           groups, layout, precision)
