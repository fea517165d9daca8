"""2-D convolution (cross-correlation) over NCHW or NHWC activations and OIHW weights."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

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
    """The formulation behind :func:`conv2d` (batched input, checked arguments).

    Strided: the input is padded explicitly and cropped to the rows and columns the windows
    read, then convolved with VALID padding. On jaxlib 0.10.2 (CPU) the input gradient of a
    strided ``conv_general_dilated`` with implicit padding can abort the process inside XLA's
    algebraic simplifier ("Window dimensions do not match RHS shape"); the explicit form does
    not (``tests/test_grads.py``). Stride 1 (every padded row is read) passes the padding to
    XLA: an explicit pad there made the forward + backward of a 3x3 64->64 convolution on
    (16, 64, 56, 56) 1.6x slower on 2 CPU cores (305 ms against 187 ms).
    """
    padding: Any = geometry.padding
    if strides != (1, 1):
        h_axis, w_axis = checks.spatial_axes(layout)
        widths = [(0, 0)] * 4
        widths[h_axis], widths[w_axis] = geometry.padding
        x = jnp.pad(x, widths)
        kh, kw = weight.shape[2:]
        for axis, out, s, k, d in zip((h_axis, w_axis), geometry.out_hw, strides, (kh, kw), dilation):
            x = lax.slice_in_dim(x, 0, (out - 1) * s + (k - 1) * d + 1, axis=axis)
        padding = "VALID"
    return lax.conv_general_dilated(
        x,
        weight,
        window_strides=strides,
        padding=padding,
        rhs_dilation=dilation,
        feature_group_count=groups,
        dimension_numbers=(layout, "OIHW", layout),
        precision=precision,
    )


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
