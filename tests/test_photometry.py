"""Photometry against truth on a few shared dev blends (a regression guard against
catastrophic fluxes; the full figures come from ``benchmarks/quality.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import REFERENCE, require_file

import scarlet_jax as sj
from scarlet_jax.measure import measure

BLENDS = [0, 1, 2, 3]  # 2-6 sources each, mixed blendedness and S/N
MEDIAN_MAX = 0.3  # |F - true| / true over the (source, band) pairs
CATASTROPHIC_MAX = 0.1  # share of pairs with |F - true| / true > 1


@pytest.fixture(scope="module")
def dev_errors():
    d = np.load(require_file(REFERENCE / "dev_blends.npz"))
    pairs, true = [], []
    for i in BLENDS:
        k = int(d["n_sources"][i])
        obs = sj.make_observation(d["images"][i], d["variance"][i], d["psfs"][i])
        pairs.append((obs, d["catalog"][i, :k]))
        true.append(d["true_flux"][i, :k])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.InputWarning)
        results = sj.deblend_batch(pairs)
    out = []
    for res, t in zip(results, true, strict=True):
        m = measure(res)
        out.append(dict(model=(m.fluxes - t) / t, conserved=(m.conserved_fluxes - t) / t,
                        flags=m.flags, result=res))
    return out


@pytest.mark.parametrize("kind", ["model", "conserved"])
def test_dev_blend_fluxes(dev_errors, kind):
    err = np.concatenate([e[kind].ravel() for e in dev_errors])
    assert np.median(np.abs(err)) < MEDIAN_MAX
    assert np.mean(np.abs(err) > 1) <= CATASTROPHIC_MAX
    assert np.all(np.isfinite(err))


def test_dev_blend_clean_numbers(dev_errors):
    for e in dev_errors:
        res = e["result"]
        assert res.converged and res.status == "converged"
        m = measure(res)
        assert np.all(m.conserved_fluxes >= 0) and np.all(m.fluxes >= 0)
