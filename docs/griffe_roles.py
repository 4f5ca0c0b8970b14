"""Griffe extension for the docs build: Sphinx roles in docstrings become inline code.

The package's docstrings are Google style with a few Sphinx cross-reference roles
(``:func:`~scarlet_jax.deblend```). mkdocstrings renders Markdown, where such a role would
show up verbatim; this turns it into inline code of the name (the last dotted part when the
target starts with ``~``, as Sphinx shows it).
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")


def _convert(text: str) -> str:
    return _ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)


class SphinxRolesToCode(griffe.Extension):
    """Rewrite every loaded docstring (modules, classes, functions, attributes)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _convert(obj.docstring.value)
