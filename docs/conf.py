"""Sphinx configuration for the ramie documentation (``python3 noxfile.py -s docs``)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))
# Guides run on the CPU with eight devices (the sharding examples need several); nothing
# in them may download anything.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

project = "ramie"
author = "the ramie authors"
copyright = "the ramie authors"  # noqa: A001 - the name Sphinx reads
release = _version("ramie")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinx_copybutton",
    "myst_nb",
    "ramie_api",
    "ramie_examples",
]

exclude_patterns = ["_build", "jupyter_execute", "tests", "README.md", ".jupyter_cache"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}

# -- autodoc ------------------------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_type_aliases = {"core.Filter": "ramie.core.Filter", "Filter": "ramie.core.Filter"}
python_use_unqualified_type_names = True  # "Module", not "ramie.core._module.Module"
typehints_use_signature = True
typehints_use_signature_return = True
typehints_document_rtype = False
always_use_bars_union = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autosummary_generate = False
# Docstrings quote names in double backticks; a single backtick is plain code, not a lookup.
default_role = "code"

# -- MyST and executed notebooks ---------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # every guide runs on every build: what it shows is real
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a guide that stops running fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown output (tables made by a cell) as MyST, GFM tables
# A traceback quoting an error message with backticks defeats the IPython traceback
# lexer, which then retries in a relaxed mode that renders it fine: not a problem.
suppress_warnings = ["misc.highlighting_failure"]

# -- HTML ----------------------------------------------------------------------
html_theme = "furo"
html_title = f"ramie {release}"
html_static_path = ["_static"]
html_css_files = ["ramie.css"]
html_theme_options = {"navigation_with_keys": True}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
