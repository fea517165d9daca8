"""Model builders: ``jconv.models.lenet``."""

from jconv._src.models import lenet as lenet

__all__ = ("lenet",)
