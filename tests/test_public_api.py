import types

import jconv as jc
from jconv import data, models, nn, train


def test_public_names_import():
    for name in jc.__all__:
        obj = getattr(jc, name)
        assert callable(obj) or isinstance(obj, types.ModuleType), name
    for module in (data, models, nn, train):
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)
    assert isinstance(jc.__version__, str)
