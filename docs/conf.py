"""Sphinx configuration of fastcrf's documentation (``sphinx-build -W docs OUT``).

The API reference is generated from the installed package's numpydoc docstrings;
the guides are Markdown (MyST), several of them the README's own sections included
verbatim, so the two cannot drift apart.
"""

import fastcrf

project = "fastcrf"
author = "fastcrf developers"
copyright = "fastcrf developers"
release = fastcrf.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
# fastcrf.torch needs PyTorch, an optional dependency: the reference builds without it.
autodoc_mock_imports = ["torch"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3
# The README's links point at files of the repository (bench/README.md,
# ARCHITECTURE.md), not at pages of this site.
# The included README sections keep their own heading levels (a "###" right under a
# page title).
suppress_warnings = ["myst.xref_missing", "myst.header"]

html_theme = "alabaster"
html_title = f"fastcrf {release}"
