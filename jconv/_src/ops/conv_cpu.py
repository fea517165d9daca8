"""The formulations behind :func:`jconv.conv` on CPU (oneDNN, matmuls, per-offset weight gradients,
3-D as 2-D, written-out transposed taps), each named after the ``jconv bench`` row that chose it."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jconv._src import checks, onednn
from jconv._src.onednn.shapes import _fwd_shape
from jconv._src.ops import conv_dense
from jconv._src.ops.geometry import ConvGeometry, _ConvSpec
from jconv._src.platform import on_cpu

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

    On CPU, where every output window reaches every input position (small maps: ResNet-18's
    3x3 convolutions on 2x2 and 1x1 maps at 28x28 input), one matmul with the unfolded weight
    (:func:`conv_dense.conv_dense`, the ``jconv bench`` row "conv 3x3 on 2x2 maps": fwd + bwd, batch
    128, ms, dense / oneDNN / XLA: 512 -> 512 on 1x1 1.6 / 7.7 / 21; 256 -> 256 on 2x2 3.4 / 6.9 /
    87; 256 -> 512 on 2x2 stride 2 2.2 / 9.0 / 6.5; where pairs are missing (3x3 on 4x4, 39% of
    them linked) it lost, 14 / 6.3).

    Otherwise on CPU, float32, where the extension is available (:func:`_onednn_applies`): oneDNN's
    convolution (:func:`_on_onednn`) for every rank, except the 2-D 1x1 matmuls in
    :func:`_conv2d_impl`. oneDNN beat the best XLA formulation 2-7x on the ``jconv bench`` rows
    "conv 3x3", "LeNet conv1/conv2", "conv3d" and "conv_transpose2d" (its "jconv, XLA convs" column),
    and tied on "conv1d" (kept on oneDNN); ``BENCHMARKS.md`` has the numbers.

    Otherwise 2-D goes through :func:`_conv2d_impl`'s measured choices, 3-D on CPU through
    :func:`_conv3d_as_2d`, the rest through :func:`_conv_xla` (1-D: XLA's measured 0.9-1.7x
    PyTorch's time on (32, 64, 1024) k5, fwd + bwd)."""
    xla = lambda x, w: _conv_xla(x, w, spec, groups)  # noqa: E731
    taps = conv_dense.dense_taps(x.shape, weight.shape, spec, groups)
    if taps is not None:
        return on_cpu(lambda x, w: conv_dense.conv_dense(x, w, spec, groups, taps), xla, x, weight)
    if weight.ndim == 4:
        return _conv2d_impl(x, weight, spec, groups)
    if _onednn_applies(x, weight):
        return _on_onednn(x, weight, spec, groups)
    if weight.ndim == 5:
        return on_cpu(lambda x, w: _conv3d_as_2d(x, w, spec, groups), xla, x, weight)
    return xla(x, weight)


def _on_onednn(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int) -> jax.Array:
    """oneDNN's convolution on CPU (XLA's on other platforms); its derivatives of every order
    are oneDNN's input- and weight-gradient kernels (:mod:`jconv._src.onednn`)."""
    p = _onednn_params(spec, groups)
    b = _block(x, weight, p)
    if b:  # on oneDNN's blocked layout: XLA cancels these transposes against the neighbours'
        p = p._replace(blocked=b)
        cpu = lambda x, w: onednn.from_blocked(onednn.fwd(onednn.to_blocked(x, b), w, p))  # noqa: E731
    elif _nxc(x, weight, p):  # on oneDNN's channels-last kernels, the buffers as they are
        p = p._replace(channels_last=True, direct=True)
        cpu = lambda x, w: jnp.moveaxis(onednn.fwd(jnp.moveaxis(x, 1, -1), w, p), -1, 1)  # noqa: E731
    else:
        cpu = lambda x, w: onednn.fwd(x, w, p)  # noqa: E731
    return on_cpu(cpu, lambda x, w: _conv_xla(x, w, spec, groups), x, weight)


def _block(x: jax.Array, weight: jax.Array, p: onednn.Params) -> int:
    """The channel block of oneDNN's blocked activation layout where a channels-first convolution
    runs on it with the kernels it would run anyway (:func:`onednn.conv_block`), else 0."""
    if p.channels_last:
        return 0
    o, i, *k = weight.shape
    wei = (p.groups, o // p.groups, i, *k) if p.groups > 1 else weight.shape
    dst = _fwd_shape(x.shape, weight.shape, p)
    b = onednn.conv_block(x.shape, tuple(wei), dst, p.strides, p.dilation, p.pad_lo, p.pad_hi)
    return b if b and x.shape[1] % b == 0 and o % b == 0 else 0  # oneDNN would pad the channels


def _nxc(x: jax.Array, weight: jax.Array, p: onednn.Params) -> bool:
    """Whether a channels-first convolution that cannot run blocked (:func:`_block`) runs on
    oneDNN's channels-last kernels (:func:`onednn.conv_nxc`), its activations transposed by XLA,
    rather than on plain buffers that the call reorders into a blocked layout padded to a multiple
    of the block (channels ``C > 1`` or ``O`` not a multiple of it): groups 1, and oneDNN's
    channels-last kernel as good as its blocked one for the forward or the weight gradient."""
    b, (o, c) = onednn.activation_block(), weight.shape[:2]
    if p.channels_last or p.groups > 1 or not b or not ((c > 1 and c % b) or o % b):
        return False
    dst = _fwd_shape(x.shape, weight.shape, p)
    return onednn.conv_nxc(x.shape, weight.shape, dst, p.strides, p.dilation, p.pad_lo, p.pad_hi)


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

    * 1x1 kernels on CPU, by :func:`_formulation_1x1` (measured there): on large maps
      :func:`_conv_offsets` with its one offset, a batched matmul ``weight @ x[n]``, and so are
      both its gradients (on (16, 64, 56, 56) 64->64 forward 5.4 against XLA's convolution 12.2,
      input gradient 4.7 against 13.0, weight gradient 7.9 against 45.3); on 12x12 to 27x27 maps
      :func:`_on_onednn` where it applies; on smaller maps (GoogLeNet's 7x7 to 1x1 inception
      branches) :func:`_conv_1x1`, one matmul over the whole batch.
    * Other float32 kernels on CPU where the extension is available: :func:`_on_onednn`.
    * Larger kernels on CPU, NCHW, where :func:`_offsets_win`: :func:`_conv_offsets_wgrad`,
      XLA's convolution whose weight gradient is one batched matmul per kernel offset (forward +
      backward of the 3x3 case: 175 against 241. In NHWC it gained nothing: 224 against 219;
      1x1 in NHWC: 24 against 75).
    * Everything else (grouped convolutions, other backends, and larger kernels where the
      ``(N, O, C)`` per-example weight copies and products of the matmul forms would pass
      :data:`_MAX_BATCHED_WEIGHTS` elements): :func:`_conv_xla`.
    """
    out_ch, c, kh, kw = weight.shape
    small = x.shape[0] * out_ch * c <= _MAX_BATCHED_WEIGHTS
    xla = lambda x, w: _conv_xla(x, w, spec, groups)  # noqa: E731
    if groups == 1 and (kh, kw) == (1, 1):
        on_onednn = _onednn_applies(x, weight)
        blocked = on_onednn and _block(x, weight, _onednn_params(spec, groups)) > 0
        form = _formulation_1x1(spec.geometry.out_size, small, on_onednn, blocked)
        if form == "per-example":
            return on_cpu(lambda x, w: _conv_offsets(_taps(x, spec, (1, 1)), w, spec), xla, x, weight)
        if form == "onednn":
            return _on_onednn(x, weight, spec, groups)
        return on_cpu(lambda x, w: _conv_1x1(_taps(x, spec, (1, 1))[0], w, spec), xla, x, weight)
    if _onednn_applies(x, weight):
        return _on_onednn(x, weight, spec, groups)
    if groups == 1 and small:
        if spec.layout == "NCHW" and _offsets_win(c, out_ch, spec.geometry.out_size):
            return on_cpu(lambda x, w: _conv_offsets_wgrad(x, w, spec), xla, x, weight)
    return xla(x, weight)


#: Output maps of at least this many positions (28x28) take per-example matmuls for a 1x1 convolution,
#: of at least :data:`_ONEDNN_1X1_POSITIONS` (12x12) oneDNN; see :func:`_formulation_1x1`.
_PER_EXAMPLE_1X1_POSITIONS = 28 * 28
_ONEDNN_1X1_POSITIONS = 12 * 12


def _formulation_1x1(out_size: checks.Pair, small: bool, onednn_applies: bool, blocked: bool = False) -> str:
    """How a 1x1 convolution (groups 1) runs on CPU: ``"per-example"`` (:func:`_conv_offsets`:
    a matmul per example, its weight gradient ``N`` products summed; needs ``small``, the
    :data:`_MAX_BATCHED_WEIGHTS` bound), ``"onednn"`` (:func:`_on_onednn`, where
    ``onednn_applies``) or ``"matmul"`` (:func:`_conv_1x1`, one matmul over the batch), by the
    size of the output map; where oneDNN takes it on blocked activations (``blocked``,
    :func:`_block`), oneDNN on large maps too: NiN's train step (28x28 input, two 96 -> 96 1x1
    layers on 28x28) took 0.92-0.93x PyTorch's time so, against 1.00-1.02x with per-example matmuls
    (two runs, 10 interleaved rounds). Forward + both gradients after a ReLU, 2 CPU cores, NCHW,
    two quiet runs, oneDNN on plain buffers, ms (per-example / one matmul / oneDNN):

    =============================  ==========================================
    input, channels in -> out      per-example / one matmul / oneDNN
    =============================  ==========================================
    (16, 64, 56, 56), 64 -> 64     13.8-20.7 / 23.3-25.8 / 15.3-22.5
    (128, 96, 28, 28), 96 -> 96    79.7-86.0 / 92.1-110.1 / 87.6-93.6 (NiN)
    (128, 256, 13, 13), 256 -> 256 165.2-181.5 / 76.5-95.6 / 60.1-71.0 (NiN)
    (128, 192, 14, 14), 192 -> 96  46.6-66.7 / 27.8-36.9 / 23.2-30.7 (DenseNet)
    (128, 64, 7, 7), 64 -> 128     5.5-5.9 / 3.4-5.4 / 5.2-7.9 (ResNeXt)
    (128, 64, 7, 7), 64 -> 64      3.3-4.1 / 2.2-2.7 / 2.7-3.6
    (128, 192, 4, 4), 192 -> 64    4.1-5.4 / 2.0-2.1 / 2.2-2.3 (GoogLeNet)
    (128, 480, 2, 2), 480 -> 192   178.3 / 5.1 / 6.6 (one run)
    (128, 832, 1, 1), 832 -> 384   98.1 / 4.7 / 10.0 (one run)
    =============================  ==========================================

    (NHWC alike on small maps: one matmul 2.8-6.4 where per-example took 6.8-190.) The
    per-example weight gradient writes ``N * O * C`` products: cheap beside large maps, the
    cost that decides on small ones; oneDNN's fixed cost per call (3.6-4.0 ms at (128, 10, 2, 2),
    one matmul 0.1) pays off only from mid-sized maps on.
    """
    positions = out_size[0] * out_size[1]
    if small and positions >= _PER_EXAMPLE_1X1_POSITIONS and not blocked:
        return "per-example"
    if onednn_applies and positions >= _ONEDNN_1X1_POSITIONS:
        return "onednn"
    return "matmul"


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
    (16, 64, 56, 56) 1.6x slower on 2 CPU cores (305 ms against 187 ms), unless a side's
    padding exceeds the kernel's reach ``(k - 1) * d`` (output rows that see only padding):
    there jaxlib 0.10.2's CPU input gradient is wrong, even NaN or 1e34 (e.g. (2, 2, 4, 4) with
    a 2x2 kernel and padding ((2, 0), (1, 1)); ``tests/test_fast_paths.py``).
    """
    padding: Any = spec.geometry.padding
    n = weight.ndim - 2
    reach = [(k - 1) * d for k, d in zip(weight.shape[2:], spec.dilation)]
    if any(s != 1 for s in spec.strides) or any(max(lohi) > r for lohi, r in zip(padding, reach)):
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


def _conv_1x1(tap: jax.Array, weight: jax.Array, spec: _ConvSpec) -> jax.Array:
    """A 1x1 convolution of ``tap`` (the input, padded and strided: :func:`_taps`) as one matmul
    over every position of the batch, ``(O, C) @ (C, N H'W')``; its input and weight gradients
    are one matmul each (NCHW adds a transpose of the output, NHWC none)."""
    n, (oh, ow) = tap.shape[0], spec.geometry.out_size
    out, c = weight.shape[:2]
    w = weight.reshape(out, c)
    if spec.layout == "NCHW":  # (O, C) . (n, C, P) -> (O, n, P)
        y = lax.dot_general(w, tap.reshape(n, c, oh * ow), (((1,), (1,)), ((), ())), spec.precision)
        return jnp.transpose(y, (1, 0, 2)).reshape(n, out, oh, ow)
    y = lax.dot_general(tap.reshape(n * oh * ow, c), w, (((1,), (1,)), ((), ())), spec.precision)
    return y.reshape(n, oh, ow, out)


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
