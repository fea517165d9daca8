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

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jconv._src import checks
from jconv._src.ops.conv_cpu import _conv_impl, _conv_transpose_taps, _onednn_applies
from jconv._src.ops.geometry import _ConvSpec, _transpose_geometry, conv_geometry
from jconv._src.platform import on_cpu

_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")


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
