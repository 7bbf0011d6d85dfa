"""
Sphinx configuration: ``make docs`` builds the site into docs/_build/html
with warnings as errors (``-W``).
"""

import os
import sys

# The checkout first, so autodoc documents this tree, not an installed copy.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from lightspeed.version import __version__  # noqa: E402

project = "lightspeed"
author = "the lightspeed authors"
copyright = "2026, the lightspeed authors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
root_doc = "index"
exclude_patterns = ["_build", "vectors"]
source_suffix = {".rst": "restructuredtext"}

# Docstrings name things with :obj: and friends; an unresolved one is shown
# as code, not a warning (the API reference does not hold every module).
nitpicky = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autoclass_content = "both"

html_theme = "alabaster"
html_title = f"lightspeed {release}"
html_static_path: list = []
