"""2-D convolution (cross-correlation) over NCHW or NHWC activations and OIHW weights."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jconv._src import checks

_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")


class ConvGeometry(NamedTuple):
    """Static geometry of one convolution, derived from shapes and options alone."""

    padding: checks.Padding  # per-side padding actually applied
    out_hw: checks.Pair  # output spatial size


def conv_geometry(
    fn: str,
    in_hw: checks.Pair,
    kernel_hw: checks.Pair,
    strides: checks.Pair,
    padding: Any,
    dilation: checks.Pair,
) -> ConvGeometry:
    """Normalises padding and computes the output size; raises if the kernel does not fit."""
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel_hw, dilation))
    pad = checks.padding(fn, padding, in_hw, eff, strides)  # type: ignore[arg-type]
    out = []
    for size, (lo, hi), e, s, k, d in zip(in_hw, pad, eff, strides, kernel_hw, dilation):
        padded = size + lo + hi
        if padded < e:
            raise ValueError(
                f"{fn}: the kernel (size {kernel_hw}, dilation {dilation}: extent {tuple(eff)}) "
                f"is larger than the padded input (spatial size {tuple(in_hw)}, padding {pad})"
            )
        out.append((padded - e) // s + 1)
    return ConvGeometry(pad, (out[0], out[1]))


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

    strides: checks.Pair
    geometry: ConvGeometry
    dilation: checks.Pair
    layout: str
    precision: Any


# The matmul forms broadcast the weight over the batch, ``(N, O, C)``, and their weight gradient
# sums ``(N, O, C)`` per-example products: beyond this many elements (64 MiB in float32) that
# memory is not worth it; XLA's convolution needs none.
_MAX_BATCHED_WEIGHTS = 2**24


def _conv2d_impl(
    x: jax.Array,
    weight: jax.Array,
    strides: checks.Pair,
    geometry: ConvGeometry,
    dilation: checks.Pair,
    groups: int,
    layout: str,
    precision: Any,
) -> jax.Array:
    """The formulation behind :func:`conv2d` (batched input, checked arguments), chosen per
    shape from measurements on 2 CPU cores (float32, ms, jconv vs. PyTorch 2.13 in one
    process; ``BENCHMARKS.md`` has the rest):

    * 1x1 kernels on CPU: :func:`_conv_offsets` with its one offset, a batched matmul
      ``weight @ x[n]``, and so are both its gradients: on (16, 64, 56, 56) 64->64 forward
      5.4 against XLA's convolution 12.2, input gradient 4.7 against 13.0, weight gradient
      7.9 against 45.3.
    * Larger kernels on CPU, NCHW, where :func:`_offsets_win`: :func:`_conv_offsets_wgrad`,
      XLA's convolution whose weight gradient is one batched matmul per kernel offset (forward +
      backward of the 3x3 case: 175 against 241. In NHWC it gained nothing: 224 against 219;
      1x1 in NHWC: 24 against 75).
    * Everything else (grouped convolutions, other backends, and batches where the
      ``(N, O, C)`` per-example weight copies and products of the matmul forms would pass
      :data:`_MAX_BATCHED_WEIGHTS` elements): :func:`_conv_xla`.
    """
    spec = _ConvSpec(strides, geometry, dilation, layout, precision)
    out_ch, c, kh, kw = weight.shape
    small = x.shape[0] * out_ch * c <= _MAX_BATCHED_WEIGHTS
    if groups == 1 and small and jax.default_backend() == "cpu":
        if (kh, kw) == (1, 1):
            return _conv_offsets(_taps(x, spec, (1, 1)), weight, spec)
        if layout == "NCHW" and _offsets_win(c, out_ch, geometry.out_hw):
            return _conv_offsets_wgrad(x, weight, spec)
    return _conv_xla(x, weight, spec, groups)


def _offsets_win(c: int, out_ch: int, out_hw: checks.Pair) -> bool:
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
    return c * out_ch >= 2048 and out_hw[0] * out_hw[1] >= 784


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
    if spec.strides != (1, 1):
        h_axis, w_axis = checks.spatial_axes(spec.layout)
        x = _pad(x, spec)
        kh, kw = weight.shape[2:]
        for axis, out, s, k, d in zip(
            (h_axis, w_axis), spec.geometry.out_hw, spec.strides, (kh, kw), spec.dilation
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
        dimension_numbers=(spec.layout, "OIHW", spec.layout),
        precision=spec.precision,
    )


def _pad(x: jax.Array, spec: _ConvSpec) -> jax.Array:
    """``x`` with the convolution's zero padding applied to its spatial axes."""
    widths = [(0, 0)] * 4
    h_axis, w_axis = checks.spatial_axes(spec.layout)
    widths[h_axis], widths[w_axis] = spec.geometry.padding
    return jnp.pad(x, widths)


def _taps(x: jax.Array, spec: _ConvSpec, kernel_hw: checks.Pair) -> list[jax.Array]:
    """For each kernel offset ``(a, b)`` in row-major order, the input rows and columns it
    meets: ``x_pad[..., a*dh :: sh, b*dw :: sw]`` cut to the output size (``(N, C, H', W')``
    in NCHW, ``(N, H', W', C)`` in NHWC). ``conv2d`` is ``sum_ab weight[:, :, a, b] @ tap``."""
    h_axis, w_axis = checks.spatial_axes(spec.layout)
    xp = _pad(x, spec)
    (oh, ow), (sh, sw), (dh, dw) = spec.geometry.out_hw, spec.strides, spec.dilation
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
    n, (oh, ow) = taps[0].shape[0], spec.geometry.out_hw
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
    fn = "conv2d"
    x = checks.array(fn, "x", x)
    weight = checks.array(fn, "weight", weight)
    layout = checks.layout(fn, layout)
    unbatched = checks.activation_ranks(fn, x)
    if weight.ndim != 4:
        raise ValueError(
            f"{fn}: `weight` must be 4-D (out_channels, in_channels // groups, kh, kw), "
            f"got shape {tuple(weight.shape)}"
        )
    if not checks.is_int(groups):
        raise TypeError(f"{fn}: `groups` must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{fn}: `groups` must be >= 1, got {groups!r}")
    strides_ = checks.pair(fn, "strides", strides)
    dilation_ = checks.pair(fn, "dilation", dilation)
    precision = _check_precision(fn, precision)
    if unbatched:
        x = x[None]
    c_in = checks.channels(x.shape, layout)
    out_ch, c_per_group, kh, kw = weight.shape
    if c_in % groups:
        raise ValueError(f"{fn}: `groups` (={groups}) must divide the input channels (={c_in})")
    if out_ch % groups:
        raise ValueError(
            f"{fn}: `groups` (={groups}) must divide the output channels weight.shape[0] "
            f"(={out_ch})"
        )
    if c_in // groups != c_per_group:
        raise ValueError(
            f"{fn}: channel mismatch: `x` has {c_in} channels ({layout}, shape "
            f"{tuple(x.shape)}), so `weight` needs in_channels // groups = {c_in // groups} "
            f"at axis 1, got weight shape {tuple(weight.shape)}"
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
    geometry = conv_geometry(
        fn, checks.spatial_dims(x.shape, layout), (kh, kw), strides_, padding, dilation_
    )
    dtype = checks.float_dtype(*arrays)
    y = _conv2d_impl(
        checks.to_float(x, dtype),
        checks.to_float(weight, dtype),
        strides_,
        geometry,
        dilation_,
        groups,
        layout,
        precision,
    )
    if bias is not None:
        shape = (1, out_ch, 1, 1) if layout == "NCHW" else (1, 1, 1, out_ch)
        y = y + checks.to_float(bias, dtype).reshape(shape)
    return y[0] if unbatched else y
