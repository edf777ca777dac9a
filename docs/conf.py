"""Sphinx configuration: ``sphinx-build -W -b html docs <out>`` (CI runs it)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# the checkout's own package (its core built in place by `pip install -e`)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "_ext"))

import aioprometheus  # noqa: E402

project = "aioprometheus"
author = "aioprometheus contributors"
copyright = "aioprometheus contributors, MIT license"
release = aioprometheus.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "stub_signatures",  # _ext/: signatures of compiled methods from _core.pyi
]

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"  # Sphinx's own default: no extra dependency
html_static_path = ["_static"]
html_theme_options = {"description": "Prometheus metrics for asyncio, compiled"}
html_show_sourcelink = False

# the framework handlers' modules import their framework, which the docs
# extra does not install
autodoc_mock_imports = ["starlette", "quart"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
# the signatures of compiled methods come from _core.pyi (stub_signatures);
# (Cython's embedded first lines are found, then replaced by the stub's)
autodoc_docstring_signature = True
# nothing is fetched at build time (no intersphinx): CI may build offline
