"""API papercuts: lazy sj.display, a short repr, per-option docs, documented fields."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import scarlet_jax as sj
from scarlet_jax.measure import Measurement, measure
from scarlet_jax.options import DEFAULTS, OPTION_DOCS, option_table
from scarlet_jax.tables import _field_docs

ROOT = Path(__file__).resolve().parents[1]


def test_display_is_importable_lazily():
    code = ("import sys, scarlet_jax as sj; assert 'matplotlib' not in sys.modules; "
            "assert callable(sj.display.plot_scene); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "display" in sj.__all__


def test_repr_is_one_short_line(hsc):
    obs, centers = hsc
    # max_iter=15 as in test_io and the CLI's demo test: the same fit program, which the
    # test run's shared cache (conftest.py) compiles once for all three
    result = sj.deblend(obs, centers, max_iter=15)
    text = repr(result)
    assert "\n" not in text and len(text) < 150, text
    assert re.fullmatch(r"DeblendResult\(7 sources, \d+ components, 5 bands, "
                        rf"(converged|max_iter) after {result.n_iter} it, chi2/px [0-9.]+\)",
                        text), text


def test_every_option_is_documented_and_the_readme_table_is_current():
    assert set(OPTION_DOCS) == set(DEFAULTS)
    assert all(OPTION_DOCS[k].strip() for k in DEFAULTS)
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- options-table -->", "<!-- /options-table -->"
    assert start in readme and end in readme
    table = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == option_table(), "run: python -m scarlet_jax.options README.md"


def test_measure_fields_are_documented():
    docs = _field_docs(Measurement)
    for field in Measurement._fields:
        assert docs.get(field), f"Measurement.{field} has no description"
        assert f"``{field}``" in measure.__doc__, f"measure() does not describe {field}"
