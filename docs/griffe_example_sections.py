"""A griffe extension for the docs site (``mkdocs.yml``): docstrings read as Markdown.

The docstrings follow Gymnasium's template: Google-style sections, a doctest section titled
``Example:`` and reST roles such as :func:`k_corruption_v0`. griffe's Google-style parser
knows only ``Examples:`` as a section and reads ``Example:`` as an admonition of Markdown
text, where ``>>>`` lines become nested block quotes and ``d["key"]`` a cross-reference; and
Markdown shows a role as its literal name. Before parsing, this renames the section title
and turns each role into plain inline code. A developer tool, not published on the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


class ExampleSections(griffe.Extension):
    """``Example:`` sections become ``Examples:``; ``:role:`name``` becomes ```name```."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", value)
