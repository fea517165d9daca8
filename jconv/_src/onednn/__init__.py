"""CPU convolutions and max pooling on oneDNN through XLA's typed FFI.

XLA:CPU's convolutions run 2-4x slower than oneDNN's on every term (forward, input gradient,
weight gradient; ``BENCHMARKS.md``). On Linux x86-64, ``pip install`` builds
``csrc/onednn_conv.cc`` (three FFI handlers) against the ``onednn-cpu-gomp`` wheel; this module
loads it and wraps the handlers in three JAX primitives, one per term:

* ``fwd(x, w) -> y``, ``bwd_data(dy, w) -> dx``, ``bwd_weights(x, dy) -> dw``. Each is bilinear,
  and the transpose of each is another of the three, so ``grad``, ``jvp``, ``hessian``, ... of any
  order stay on oneDNN; ``vmap`` folds a mapped batch into ``N``, and mapped weights (per-example
  gradients included) into the groups: still one kernel call.
* Blocked activations: where oneDNN would run a convolution on its blocked ``nC..b`` layout anyway
  (:func:`conv_block`: 16 channels a block with AVX-512, 8 with AVX2, channels a multiple of it),
  the call takes and returns ``(N, C // b, *s, b)`` arrays (:func:`to_blocked`) instead of reordering
  NCHW buffers in and out; the transposes around it cancel between consecutive convolutions, or fuse
  into the elementwise work between them (BatchNorm, ReLU, residual adds). Pooling over a multiple of
  :func:`activation_block` channels runs blocked too.
* Where that layout would pad the channels (LeNet's 1 -> 6 -> 16), channels-first convolutions run
  on oneDNN's channels-last kernels instead where it has them (:func:`conv_nxc`): the call takes
  ``(N, *s, C)`` arrays as they are (``Params.direct``), XLA transposes around it.
* The CPU lowering is a ``custom_partitioning`` call: under ``jit`` with a batch sharded over a
  mesh, each device convolves its shard (the weight gradient is then summed with ``psum``)
  instead of gathering the batch around the custom call.

Max pooling (``csrc/onednn_pool.cc``, :mod:`jconv._src.onednn.pooling`) runs on oneDNN with the
convolutions: forward with a workspace (each output's pick) and backward, PyTorch's semantics (a plain
loop takes inputs with NaN or infinities, which oneDNN alone would drop), float32.

Which backend runs: :func:`cpu_conv_backend`; ``JCONV_CPU_CONV=xla|onednn`` forces one (read
once, at the first convolution). Float32 only: other dtypes keep XLA's convolution.

Threads: oneDNN runs on GNU OpenMP. Its default (spinning) wait policy fights XLA's own intra-op
threads for the cores: ``OMP_WAIT_POLICY=PASSIVE`` is set, unless the user set it, before
``libdnnl`` loads (measurements in ``BENCHMARKS.md``).
"""

from jconv._src.onednn import batching as batching  # registers the vmap rules
from jconv._src.onednn.backend import BACKENDS as BACKENDS
from jconv._src.onednn.backend import activation_block as activation_block
from jconv._src.onednn.backend import conv_block as conv_block
from jconv._src.onednn.backend import conv_nxc as conv_nxc
from jconv._src.onednn.backend import ENV_VAR as ENV_VAR
from jconv._src.onednn.backend import cpu_conv_backend as cpu_conv_backend
from jconv._src.onednn.backend import describe as describe
from jconv._src.onednn.backend import use as use
from jconv._src.onednn.primitives import bwd_data as bwd_data
from jconv._src.onednn.primitives import bwd_weights as bwd_weights
from jconv._src.onednn.primitives import fwd as fwd
from jconv._src.onednn.shapes import Params as Params
from jconv._src.onednn.shapes import from_blocked as from_blocked
from jconv._src.onednn.shapes import to_blocked as to_blocked
