"""Shared fixtures. Numerics tests that need float64 use the ``x64`` fixture."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# The library turns on its compilation cache (JAX's persistent cache and the executable
# store, cache.py) at its first fit. A test run gets one fresh folder of its own: the
# controlling process makes it before any test runs, the xdist workers and every
# subprocess (CLI, dask workers) inherit it through the environment, so a program compiled
# by one test is loaded by the others, and the folder is removed when the run ends (hermetic
# per run). A caller's SCARLET_JAX_CACHE (a folder, or "off") is kept as given. Tests of the
# cache itself point it at their own tmp_path.
_RUN_CACHE = None
if "SCARLET_JAX_CACHE" not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ:
    _RUN_CACHE = tempfile.mkdtemp(prefix="scarlet_jax_test_cache_")
    os.environ["SCARLET_JAX_CACHE"] = _RUN_CACHE
os.environ.setdefault("SCARLET_JAX_CACHE", "off")


def pytest_unconfigure(config):
    """Remove this run's cache folder (in the process that made it)."""
    if _RUN_CACHE is not None and not hasattr(config, "workerinput"):
        shutil.rmtree(_RUN_CACHE, ignore_errors=True)

#: ``../shared/reference`` beside the checkout (``SCARLET_JAX_REFERENCE`` points elsewhere).
#: Every test reads reference files through :func:`require_file` (test_infrastructure
#: checks that), so under ``CI=true`` a missing file fails the run instead of skipping.
REFERENCE = Path(os.environ.get(
    "SCARLET_JAX_REFERENCE",
    Path(__file__).resolve().parents[1].parent / "shared" / "reference"))


def require_file(path: Path) -> Path:
    """Return ``path`` if it exists; else skip the test, or fail it under ``CI=true`` (CI
    has ``../shared`` beside the checkout, so a missing reference file is a broken set-up)."""
    if not Path(path).exists():
        reason = f"reference data not found at {Path(path).resolve()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: reference files are required)")
        pytest.skip(reason)
    return Path(path)


@pytest.fixture(name="require_file", scope="session")
def require_file_fixture():
    """:func:`require_file` as a fixture, for test modules."""
    return require_file


@pytest.fixture
def x64():
    """Enable float64 for one test and restore the previous setting."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def reference_fit():
    path = require_file(REFERENCE / "hsc_cosmos_35_lite.npz")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def hsc():
    from scarlet_jax.datasets import hsc_cosmos_35

    return hsc_cosmos_35()


@pytest.fixture(scope="session")
def hsc_lite_blend(hsc, reference_fit):
    """The HSC observation with scarlet lite's initial components (from ``reference_fit``)."""
    from scarlet_jax.components import InitComponent

    obs, _ = hsc
    r = reference_fit
    comps = [
        InitComponent(int(r[f"init_comp{i}_source"]), tuple(r[f"init_comp{i}_peak"]),
                      tuple(r[f"init_comp{i}_origin"]), r[f"init_comp{i}_spectrum"],
                      r[f"init_comp{i}_morph"])
        for i in range(int(r["init_n_components"]))
    ]
    return obs, comps
