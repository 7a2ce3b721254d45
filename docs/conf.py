"""Sphinx configuration of hookbook's documentation site.

Build it with ``nox -s docs``, or directly::

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Any warning fails the build (``-W``), missing cross-references included
(``-n``). The tutorials are the notebooks in ``notebooks/`` (the single
source): the local extension ``docs/_ext/hookbook_docs.py`` copies them into
the git-ignored ``docs/tutorials/`` at build start, and myst-nb executes every
one of them on every build; a raising cell fails the build with its traceback.
The same extension writes the generated reference pages into the git-ignored
``docs/_generated/``. No network is used: no intersphinx, no remote assets.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

from hookbook_docs import KERNEL_NAME  # docs/_ext, on sys.path just above

from hookbook import __version__

# -- Project --------------------------------------------------------------------------------

project = "hookbook"
author = "hookbook contributors"
copyright = "hookbook contributors"
version = release = __version__

# -- General --------------------------------------------------------------------------------

extensions = [
    "myst_nb",  # MyST markdown pages and MyST-notebook execution (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_copybutton",  # a copy button on every code block
    "hookbook_docs",  # docs/_ext: copies the notebooks, generates reference pages, the kernel
]

source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated",  # fragments included by the reference pages, not pages of their own
    "_ext",
    "examples",  # the how-to's Python sources, shown with literalinclude
    "jupyter_execute",
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]

nitpicky = True
nitpick_ignore_regex = [
    # Third-party types in signatures: without intersphinx (the build needs no network)
    # Sphinx cannot link them, and they are not hookbook's to document.
    ("py:.*", r"(numpy|np|pandas|pyarrow|pydantic|annotated_types|httpx|fastapi|starlette)\..*"),
    # The standard library, for the same reason (no intersphinx to docs.python.org).
    ("py:.*", r"(collections\.abc|datetime|os|pathlib|enum|hmac|typing)\..*"),
    # Internal seams that appear in public signatures but are not public API: the
    # client's HTTP transport (from_uri builds it) and the server's test seams.
    ("py:class", r"hookbook\.client\.transport\.Transport|hookbook\.server\.services\.Seams"),
]

# -- MyST and myst-nb -----------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

nb_execution_mode = "force"  # execute every notebook on every build; no cache
# A raising cell fails the build with its traceback shown. myst-nb's own
# ``nb_execution_raise_on_error = True`` would abort the build with only the notebook's
# path on screen (in "force" mode the cell traceback goes to a /tmp/sphinx-err-*.log file),
# so instead myst-nb logs the cell and its traceback as a warning (-W makes it fatal) and
# hookbook_docs.check_executions fails the build for it even without -W, naming the notebook.
nb_execution_raise_on_error = False
nb_execution_show_tb = True
nb_execution_timeout = 120  # seconds per cell
nb_execution_in_temp = False  # run in docs/tutorials/, beside the copies of notebooks/ files
nb_execution_allow_errors = False
# Whatever kernel name a notebook's header gives (``python3``), run it in the kernel that
# hookbook_docs writes for this interpreter, so the notebooks see this environment.
nb_kernel_rgx_aliases = {".*": KERNEL_NAME}
nb_merge_streams = True

# -- autodoc --------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# -- HTML -----------------------------------------------------------------------------------

# The Jupyter Book family's theme (the tutorials are notebooks): pydata-sphinx-theme, which
# sphinx-book-theme builds on. Everything it needs ships in the package: no fonts, scripts or
# icons are fetched, at build time or in the browser.
html_theme = "pydata_sphinx_theme"
html_title = f"hookbook {release}"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 4,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = ["_static"]
# Every pre and table scrolls sideways instead of being cut off (narrow screens included).
html_css_files = ["hookbook.css"]
html_show_sourcelink = False

# Copy buttons: leave prompts ("$ ", ">>> ") out of what is copied.
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True
