"""The final spectrum solve: NNLS on the normal equations against an exact oracle, and
the refit of a result (never worse than the fit's spectra for its morphologies)."""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import pytest

import scarlet_jax as sj
from scarlet_jax.spectra import nnls_gram, normal_equations, refit_spectra


def _oracle(a, d):
    """Exact NNLS by enumerating the support: the best feasible unconstrained solution over
    every subset of columns (fine for K <= 6)."""
    k = a.shape[1]
    best, best_x = np.inf, np.zeros(k)
    for r in range(k + 1):
        for idx in itertools.combinations(range(k), r):
            x = np.zeros(k)
            if idx:
                x[list(idx)] = np.linalg.lstsq(a[:, idx], d, rcond=None)[0]
            if np.all(x >= -1e-12):
                f = np.sum((a @ np.maximum(x, 0) - d) ** 2)
                if f < best:
                    best, best_x = f, np.maximum(x, 0)
    return best_x, best


@pytest.mark.parametrize("seed", range(20))
def test_nnls_gram_matches_exact_oracle(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 7))
    a = rng.normal(size=(int(rng.integers(k, 40)), k))
    if seed % 2:  # non-negative, strongly correlated templates, as blended components are
        a = np.abs(a) + 0.5
    d = rng.normal(size=a.shape[0]) * 3 + a @ rng.normal(size=k)
    x = nnls_gram(a.T @ a, a.T @ d)
    x_ref, f_ref = _oracle(a, d)
    assert np.all(x >= 0)
    assert np.sum((a @ x - d) ** 2) <= f_ref * (1 + 1e-9) + 1e-12
    np.testing.assert_allclose(x, x_ref, rtol=1e-6, atol=1e-8)


def test_nnls_gram_zero_template_stays_zero():
    a = np.array([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    x = nnls_gram(a.T @ a, a.T @ np.array([1.0, 2.0, 0.4]))
    assert x[1] == 0 and x[0] > 0


def test_normal_equations_match_lstsq():
    rng = np.random.default_rng(3)
    t = rng.random((3, 2, 5, 4))
    img = rng.normal(size=(2, 5, 4))
    w = rng.random((2, 5, 4))
    gram, rhs = normal_equations(t, img, w)
    for b in range(2):
        a = (t[:, b] * np.sqrt(w[b])).reshape(3, -1).T
        np.testing.assert_allclose(gram[b], a.T @ a, rtol=1e-12)
        np.testing.assert_allclose(rhs[b], a.T @ (img[b] * np.sqrt(w[b])).ravel(), rtol=1e-12)


def test_refit_spectra_lowers_chi2_and_recovers_scaled_spectra():
    blend = sj.datasets.synthetic_blends(1, seed=5, shape=(48, 48))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.InputWarning)
        res = sj.deblend(blend.observation, blend.centers, max_iter=30, final_spectra=False)
    refit = refit_spectra(res)
    assert refit.chi2() <= res.chi2() * (1 + 1e-5)
    assert np.all(refit.spectra >= 0)
    # spectra scaled away from the optimum come back to it (the solve is exact for the morphs)
    spoiled = dataclasses.replace(res, spectra=res.spectra * 1.7)
    np.testing.assert_allclose(refit_spectra(spoiled).spectra, refit.spectra, rtol=2e-3,
                               atol=1e-4 * float(np.max(refit.spectra)))
    # the default runs it: the result's spectra are already at the optimum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.InputWarning)
        default = sj.deblend(blend.observation, blend.centers, max_iter=30)
    np.testing.assert_allclose(refit_spectra(default).spectra, default.spectra, rtol=2e-3,
                               atol=1e-4 * float(np.max(default.spectra)))
