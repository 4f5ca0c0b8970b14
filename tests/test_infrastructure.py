"""The test suite's own guards: reference files are required under CI."""

from __future__ import annotations

import pytest
from conftest import REFERENCE, require_file


def test_missing_reference_skips_locally(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="reference data not found"):
        require_file(tmp_path / "absent.npz")


def test_missing_reference_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_file(tmp_path / "absent.npz")


def test_present_reference_is_returned(tmp_path):
    path = tmp_path / "there.npz"
    path.write_bytes(b"")
    assert require_file(path) == path
    assert REFERENCE.name == "reference"


def test_every_reference_file_is_read_through_require_file():
    """No test builds its own path to ../shared or tests a reference file's existence
    (which would skip, or pass, silently under CI)."""
    import re
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*.py")):
        if path.name in ("conftest.py", Path(__file__).name):
            continue
        src = path.read_text()
        assert not re.search(r"""["'/]shared["'/]""", src), f"{path.name}: use conftest.REFERENCE"
        assert not re.search(r"(REFERENCE|LITE_JSON|OPERATORS)\b[^\n]*\.(exists|is_file)\(",
                             src), f"{path.name}: use require_file"


def test_fit_and_operator_tests_fail_under_ci_without_the_reference(tmp_path):
    """The real thing: pytest under CI=true with the reference folder missing errors out
    on the HSC fit tests and the operator reference tests instead of skipping them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CI="true", SCARLET_JAX_REFERENCE=str(tmp_path / "absent"),
               PYTHONPATH=str(root), JAX_PLATFORMS="cpu")
    tests = ["tests/test_fit.py::test_packing_keeps_the_reference_model",
             "tests/test_prox.py::test_reference_count",
             "tests/test_io.py::test_import_of_the_lite_reference_checks_the_observations"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *tests], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "3 errors" in out and "skipped" not in out, out
    assert out.count("CI=true: reference files are required") >= 3, out
