import jconv as jc


def test_public_names_import():
    for name in jc.__all__:
        assert callable(getattr(jc, name)), name
    assert isinstance(jc.__version__, str)
