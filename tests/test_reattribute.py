"""Re-attribution of a drained source's bump (``reattribute_drained``): a faint source
whose light a bright neighbour's morphology took gets it back, with its own colour; a
result with nothing drained is left as it is."""

from __future__ import annotations

import dataclasses

import numpy as np

import scarlet_jax as sj
from scarlet_jax.reattribute import drained_sources, reattribute_drained
from scarlet_jax.result import DeblendResult
from scarlet_jax.spectra import refit_spectra

SIZE = 41
BRIGHT, FAINT = (20, 20), (20, 27)


def _gauss(center, sigma):
    yy, xx = np.indices((SIZE, SIZE))
    return np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma**2))


def _truth():
    """A bright exponential galaxy and a faint, bluer-red point-like source on its wing;
    the data are their model plus a little noise."""
    yy, xx = np.indices((SIZE, SIZE))
    bright = np.exp(-np.hypot(yy - BRIGHT[0], xx - BRIGHT[1]) / 4.0)
    faint = _gauss(FAINT, 1.0)
    psf = _gauss((7, 7), 1.0)[:15, :15]
    psf = np.repeat((psf / psf.sum())[None], 3, 0)
    var = np.full((3, SIZE, SIZE), 1e-4, np.float32)
    obs = sj.make_observation(np.zeros((3, SIZE, SIZE), np.float32), var, psf)
    spectra = np.array([[10.0, 10.0, 10.0], [0.3, 1.0, 2.5]], np.float32)

    def result(morphs, spec):
        return DeblendResult(
            observation=obs, centers=np.array([BRIGHT, FAINT], np.float32),
            spectra=np.asarray(spec, np.float32), morphs=np.asarray(morphs, np.float32),
            origins=np.zeros((2, 2), np.int32), support=np.ones((2, SIZE, SIZE), bool),
            peaks=np.array([BRIGHT, FAINT], np.int32),
            component_source=np.array([0, 1], np.int32), loss=np.zeros(0, np.float32),
            n_iter=0, converged=True)

    truth = result([bright, faint], spectra)
    rng = np.random.default_rng(0)
    images = truth.model + 0.01 * rng.normal(size=truth.model.shape).astype(np.float32)
    obs = sj.make_observation(np.asarray(images, np.float32), var, psf)
    return obs, bright, faint, spectra, result


def _with_obs(res, obs):
    return dataclasses.replace(res, observation=obs)


def test_drained_source_gets_its_bump_and_colour_back():
    obs, bright, faint, spectra, result = _truth()
    true_flux = spectra[1] * faint.sum()
    # the drain: the faint source's light sits in the bright morphology (in its colour),
    # its own morphology moved off its centre, where the data hold nothing
    drained = _with_obs(result([bright + faint * spectra[1].mean() / 10.0,
                                _gauss((FAINT[0] + 8, FAINT[1]), 1.0)],
                               [spectra[0], spectra[1] * 1e-4]), obs)
    drained = refit_spectra(drained)
    assert drained.source_fluxes[1].sum() < 0.2 * true_flux.sum()
    assert [s for s, _ in drained_sources(drained, 0.25, 0.005)] == [1]
    moved = reattribute_drained(drained, 0.25, 0.005)
    flux = moved.source_fluxes[1]
    np.testing.assert_allclose(flux.sum(), true_flux.sum(), rtol=0.25)  # was under 0.2
    assert flux[0] < flux[1] < flux[2]  # its own (red) colour, not the neighbour's (flat)
    np.testing.assert_allclose(moved.source_fluxes[0], spectra[0] * bright.sum(), rtol=0.05)
    assert moved.chi2() <= drained.chi2()


def test_nothing_drained_is_left_alone():
    obs, bright, faint, spectra, result = _truth()
    fitted = refit_spectra(_with_obs(result([bright, faint], spectra), obs))
    assert drained_sources(fitted, 0.25, 0.005) == []
    assert reattribute_drained(fitted, 0.25, 0.005) is fitted


def test_off_in_lsst_pipeline_and_by_default():
    assert sj.LSST_PIPELINE["reattribute_drained"] == 0
