"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build`` (``pip install -e '.[docs]'``).

The API reference is generated from the docstrings (autodoc, Google style via napoleon); the
tutorial is a MyST notebook executed at build time (myst-nb), so its outputs are jconv's own and
its hidden assertions check them against the values printed in d2l's notebooks.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the tutorial kernel inherits it

project = "jconv"
author = "the jconv developers"
copyright = "2026, the jconv developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True

html_theme = "sphinx_book_theme"
html_title = "jconv"
html_theme_options = {"show_toc_level": 2}
