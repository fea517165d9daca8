"""Per-platform formulations, chosen where the computation runs, not where Python runs.

jconv's CPU formulations (matmul convolutions, strided-slice max pooling, ...) were measured on
XLA:CPU; other backends keep XLA's own convolution and ``reduce_window``. The choice is staged
out with ``lax.platform_dependent``, so it is made when the program is lowered for a platform:
CPU arrays on a GPU host take the CPU formulation, and a program lowered ahead of time for
another platform gets that platform's.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from jax import lax

_forced: list[str] = []


def on_cpu(cpu: Callable[..., Any], other: Callable[..., Any], *args: Any) -> Any:
    """``cpu(*args)`` where the computation runs on CPU, ``other(*args)`` elsewhere (both traced;
    the unused one is dropped at lowering)."""
    if _forced:
        return cpu(*args) if _forced[-1] == "cpu" else other(*args)
    return lax.platform_dependent(*args, cpu=cpu, default=other)


@contextlib.contextmanager
def traced_as(platform: str) -> Iterator[None]:
    """Traces only ``platform``'s formulation (for tests that read a jaxpr's structure)."""
    _forced.append(platform)
    try:
        yield
    finally:
        _forced.pop()
