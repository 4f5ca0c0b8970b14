"""MkDocs hook: quote one ``# %%`` cell of an example script in a page.

A line ``<!-- cell: examples/hsc_blend.py 3 -->`` in a page becomes a Python code block
holding the third ``# %%`` cell of that file, as it stands, so the tutorials never drift
from the scripts that ``docs/make_figures.py`` runs to draw their pictures. A missing file
or cell fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError

_CELL = re.compile(r"^<!-- cell: (\S+) (\d+) -->$", re.MULTILINE)


def cells(text: str) -> list[str]:
    """The ``# %%`` cells of a script (what comes before the first one is left out)."""
    parts = re.split(r"^(?=# %%)", text, flags=re.MULTILINE)
    return [p.strip("\n") for p in parts if p.startswith("# %%")]


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config.config_file_path).parent

    def quote(match: re.Match) -> str:
        path = root / match[1]
        if not path.is_file():
            raise PluginError(f"{page.file.src_path}: {match[1]}: no such file")
        found = cells(path.read_text())
        n = int(match[2])
        if not 1 <= n <= len(found):
            raise PluginError(f"{page.file.src_path}: {match[1]} has {len(found)} cells, not {n}")
        return f"```python\n{found[n - 1]}\n```"

    return _CELL.sub(quote, markdown)
