"""Regenerate the tutorial pictures and printed output under docs/figures/.

Runs each example script of ``examples/`` as it stands (in a temporary folder, so its
``out/`` goes there), copies the PNGs it wrote to ``docs/figures/<example>_<name>.png`` and
its printed output to ``docs/figures/<example>.txt``; the tutorial pages show both next to
the script's cells. Run it from the repository root after changing an example or the
pictures, and commit the results::

    python docs/make_figures.py            # both examples, about a minute on a laptop CPU
    python docs/make_figures.py hsc_blend  # one of them

Pictures above ``MAX_BYTES`` are re-saved with fewer colours (Pillow, if installed) or
reported, so the repository stays small.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
EXAMPLES = ("hsc_blend", "synthetic_batch")
MAX_BYTES = 300_000


def run_example(name: str) -> list[Path]:
    """Run ``examples/<name>.py`` in a temporary folder; return the files it copied here."""
    script = ROOT / "examples" / f"{name}.py"
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        out = io.StringIO()
        try:
            os.chdir(tmp)
            with contextlib.redirect_stdout(out):
                runpy.run_path(str(script), run_name="__main__")
        finally:
            os.chdir(old)
        text = out.getvalue().replace(tmp + os.sep, "")
        (FIGURES / f"{name}.txt").write_text(text)
        written.append(FIGURES / f"{name}.txt")
        for png in sorted(Path(tmp).rglob("*.png")):
            target = FIGURES / f"{name}_{png.name}"
            shutil.copyfile(png, target)
            written.append(target)
    return written


def shrink(path: Path) -> None:
    """Re-save a PNG over MAX_BYTES with a 256-colour palette (needs Pillow)."""
    if path.suffix != ".png" or path.stat().st_size <= MAX_BYTES:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"warning: {path} is {path.stat().st_size} bytes (Pillow not installed)")
        return
    with Image.open(path) as im:
        im.convert("RGB").quantize(256).save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        print(f"warning: {path} is still {path.stat().st_size} bytes")


def main(argv: list[str]) -> int:
    names = argv or list(EXAMPLES)
    unknown = sorted(set(names) - set(EXAMPLES))
    if unknown:
        print(f"unknown example(s) {unknown}; choose from {EXAMPLES}", file=sys.stderr)
        return 2
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name in names:
        for path in run_example(name):
            shrink(path)
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
