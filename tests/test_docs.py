"""The documentation builds with warnings as errors, its tutorial executed (hidden cells check the
outputs against the seed notebooks' values), and its API reference covers every public name."""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ("jconv", "jconv.nn", "jconv.models", "jconv.train", "jconv.data")

pytest.importorskip("sphinx", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("myst_nb")

# one worker builds the docs once for every test here: the group keeps them on one worker (pytest < 9:
# pytest 9 breaks xdist's grouping, see pyproject.toml) and the session scope builds once per worker
pytestmark = pytest.mark.xdist_group("docs")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), os.path.join(ROOT, "docs"), str(out / "html")],
        capture_output=True, text=True, env=env, timeout=600, cwd=str(out),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    yield out / "html"
    shutil.rmtree(out, ignore_errors=True)


def _page(built, name: str) -> str:
    return (built / name).read_text()


def test_every_public_name_is_in_the_api_reference(built):
    html = "".join(_page(built, f"api/{p}.html") for p in ("ops", "nn", "models", "train", "data"))
    ids = set(re.findall(r'id="([^"]+)"', html))
    for modname in MODULES:
        module = sys.modules.get(modname) or __import__(modname, fromlist=["_"])
        assert f"module-{modname}" in ids, modname
        for name in module.__all__:
            if modname == "jconv" and name in ("data", "models", "nn", "train"):
                continue  # submodules: their own pages (checked above)
            assert f"{modname}.{name}" in ids, f"{modname}.{name} is missing from the API reference"


def test_tutorial_is_executed_with_jconvs_outputs(built):
    html = _page(built, "tutorial.html")
    # Outputs of the executed cells (not in the page's source): the seeds' values, printed by jconv.
    assert "[[ 0.  1.  0.  0.  0. -1.  0.]" in html
    assert "batch 10, loss" in html
    assert "Sequential" in html and "61,706" in html
    assert "np.testing.assert_array_equal" not in html  # the checking cells are hidden


def test_training_page_shows_the_live_help(built):
    html = _page(built, "training.html")
    assert "--overwrite" in html and "(default: 10)" in html


def test_readme_links_stay_inside_the_repository():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "../shared" not in readme
    for target in re.findall(r"\]\(([^)#]+)", readme):
        if not target.startswith("http"):
            assert os.path.exists(os.path.join(ROOT, target)), target
