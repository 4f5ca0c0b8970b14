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
