"""Griffe extension for the docs build: the package's Sphinx habits, read as Markdown.

- The docstrings are Google style with a few Sphinx cross-reference roles
  (``:func:`~scarlet_jax.deblend```). mkdocstrings renders Markdown, where such a role would
  show up verbatim; this turns it into inline code of the name (the last dotted part when
  the target starts with ``~``, as Sphinx shows it).
- Module constants are documented with ``#:`` comments above them (``DEFAULTS``,
  ``SCHEMA_VERSION``, ...), which griffe does not read; they become the attribute's
  docstring.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")


def _convert(text: str) -> str:
    return _ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)


def _comment_doc(obj: griffe.Object) -> str | None:
    """The ``#:`` comment lines right above an attribute's assignment, if any."""
    if obj.filepath is None or not obj.lineno or isinstance(obj.filepath, list):
        return None
    try:
        lines = obj.lines_collection[obj.filepath]
    except KeyError:
        return None
    found = []
    i = obj.lineno - 2  # the line above the assignment, 0-based
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.append(lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(reversed(found)) or None


class SphinxRolesToCode(griffe.Extension):
    """Rewrite every loaded docstring (modules, classes, functions, attributes)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None and obj.is_attribute:
            text = _comment_doc(obj)
            if text:
                obj.docstring = griffe.Docstring(text, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = _convert(obj.docstring.value)
