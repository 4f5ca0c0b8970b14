"""Photometry against truth on a few shared dev blends (a regression guard against
catastrophic fluxes; the full figures come from ``benchmarks/quality.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import REFERENCE, require_file

import scarlet_jax as sj
from scarlet_jax.centers import validate_centers
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


def test_dev_blend_spectra_at_their_optimum(dev_errors):
    """The default final spectrum solve leaves every spectrum at the weighted non-negative
    least-squares optimum for the fitted morphologies."""
    from scarlet_jax.spectra import refit_spectra

    res = dev_errors[0]["result"]
    again = refit_spectra(res)
    np.testing.assert_allclose(again.spectra, res.spectra, rtol=1e-3,
                               atol=1e-4 * float(np.max(res.spectra)))


def _gauss(shape, center, sigma):
    y, x = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((y - center[0]) ** 2 + (x - center[1]) ** 2) / (2 * sigma**2))
    return g / g.sum()


def test_own_snr_gives_a_faint_source_on_a_bright_wing_one_component():
    """A faint source sitting on a bright galaxy's wing: its PSF-weighted SNR counts the
    neighbour's light, which alone would give it a second (free) component."""
    from scarlet_jax.initialization import init_components

    shape = (48, 48)
    bright, faint = (24, 20), (24, 29)
    psf = _gauss((21, 21), (10, 10), 1.2)[None].repeat(3, 0)
    image = 4e4 * _gauss(shape, bright, 4.0) + 100 * _gauss(shape, faint, 1.5)
    images = np.repeat(image[None], 3, 0) + np.random.default_rng(0).normal(0, 1, (3,) + shape)
    obs = sj.make_observation(images.astype(np.float32), np.ones((3,) + shape, np.float32), psf)
    centers = np.array([bright, faint], float)

    def n_components(own):
        comps = init_components(obs, centers, init_subtract=True, init_noise_relative=True,
                                init_own_snr=own)
        return [sum(c.source == s for c in comps) for s in range(2)]

    assert n_components(False) == [2, 2]
    assert n_components(True) == [2, 1]


@pytest.mark.slow
def test_btk_subset_meets_the_issue_targets():
    """BTK blends 0-11 (306 source-band pairs) with the default options: the issue's
    targets for the whole set (median <= 0.25, p90 <= 2, <= 10% catastrophic; the old
    defaults measured 0.39 / 23.5 / 37% here), with a little room for the subset."""
    d = np.load(require_file(REFERENCE / "btk_dev_blends.npz"))
    pairs, true = [], []
    for i in range(12):
        k = int(d["n_sources"][i])
        centers = d["centers"][i, :k]
        # a source whose centre rounds onto another's is merged into it (InputWarning)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sj.InputWarning)
            _, kept = validate_centers(centers, d["images"].shape[-2:], return_kept=True)
        pairs.append((sj.make_observation(d["images"][i], d["variance"][i], d["psfs"][i]),
                      centers))
        true.append(d["true_flux"][i, :k][kept])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.InputWarning)
        results = sj.deblend_batch(pairs)
    err = np.concatenate([np.abs(measure(r).fluxes - t).ravel() / t.ravel()
                          for r, t in zip(results, true, strict=True)])
    assert np.all(np.isfinite(err))
    assert np.median(err) <= 0.25
    assert np.percentile(err, 90) <= 2.0
    assert np.mean(err > 1) <= 0.12
