import inspect
import types

import jconv as jc
from jconv import data, models, nn, train


def _public(module):
    return {n for n, v in vars(module).items() if not n.startswith("_")
            and not (isinstance(v, types.ModuleType) and not v.__name__.startswith("jconv."))
            and n not in ("annotations",)}


def test_public_names_import():
    for module in (jc, data, models, nn, train):
        # __all__ lists exactly what the module defines (nothing missing, nothing stale)
        assert set(module.__all__) == _public(module), module.__name__
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                assert obj.__name__ == f"jconv.{name}", name
            elif inspect.isfunction(obj) or inspect.isclass(obj):
                # re-exported from jconv's private modules (or JAX's initializers)
                assert obj.__module__.startswith(("jconv._src.", "jax.")), (module.__name__, name)
            else:
                assert callable(obj) or isinstance(obj, (dict, float)), (module.__name__, name)
    assert isinstance(jc.__version__, str)
