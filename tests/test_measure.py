"""Measurements: fluxes, scarlet lite's flux re-distribution, centroids, chi^2."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import REFERENCE

from scarlet_jax import measure as M

MAX_ITER = 15  # one compiled fit shared by the result tests of this suite


def _wrap_ids():
    return pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])


@pytest.fixture(scope="module")
def lite_result(hsc, require_file):
    """scarlet lite's own fit of hsc_cosmos_35, read from the reference JSON."""
    path = require_file(REFERENCE / "hsc_cosmos_35_lite_model.json")
    from scarlet_jax.io import import_scarlet_lite

    return import_scarlet_lite(path, hsc[0])[0]


@pytest.fixture(scope="module")
def fitted(hsc):
    from scarlet_jax import deblend

    obs, centers = hsc
    return deblend(obs, centers, max_iter=MAX_ITER)


def _random_case(rng, n_sources=3, shape=(4, 20, 18)):
    b, h, w = shape
    images = rng.normal(size=shape).astype(np.float32) + 2.0
    weights = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    weights[0, 3, 4] = 0.0
    models = np.abs(rng.normal(size=(n_sources, b, h, w))).astype(np.float32)
    return images, weights, models


@_wrap_ids()
def test_conserve_flux_positive_models_partition_the_data(wrap, rng):
    images, weights, models = _random_case(rng)
    out, flux = wrap(M.conserve_flux)(images, weights, models)
    out, flux = np.asarray(out), np.asarray(flux)
    assert out.shape == models.shape and flux.shape == models.shape[:2]
    expected = np.where(weights > 0, images, 0.0)
    np.testing.assert_allclose(out.sum(axis=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flux, out.sum(axis=(-2, -1)), rtol=1e-5)
    ratio = models / models.sum(axis=0)
    np.testing.assert_allclose(out, ratio * expected, rtol=1e-5, atol=1e-6)
    assert np.all(out[:, 0, 3, 4] == 0)  # masked pixel zeroed


def test_conserve_flux_zero_denominator_clip_and_footprints(rng):
    images, weights, models = _random_case(rng, n_sources=2)
    weights[1, 15, 6] = 0.0
    models[:, :, :5] = 0.0  # nobody has light there
    models[1, :, 10] = -0.5 * models[0, :, 10]  # opposite signs: ratio of source 0 > 1
    out, _ = M.conserve_flux(images, weights, models)
    out = np.asarray(out)
    assert np.all(out[:, :, :5] == 0)
    data = np.where(weights > 0, images, 0.0)
    np.testing.assert_allclose(out[0, :, 10], data[:, 10], rtol=1e-6)  # clipped to 1
    assert np.all(np.abs(out) <= np.abs(data)[None] + 1e-6)
    fp = np.zeros((2,) + images.shape[1:], bool)
    fp[0, 8:12, 4:9] = True
    out_fp, _ = M.conserve_flux(images, weights, models, fp)
    out_fp = np.asarray(out_fp)
    assert np.all(out_fp[0][:, ~fp[0]] == 0)
    np.testing.assert_array_equal(out_fp[0][:, fp[0]], out[0][:, fp[0]])
    unmasked, _ = M.conserve_flux(images, weights, models, mask_footprint=False)
    assert np.asarray(out)[:, 1, 15, 6].sum() == 0
    assert np.asarray(unmasked)[:, 1, 15, 6].sum() != 0


def test_array_functions_vmap_over_blends(rng):
    cases = [_random_case(rng) for _ in range(3)]
    images, weights, models = (np.stack(x) for x in zip(*cases, strict=True))
    batched = jax.jit(jax.vmap(M.conserve_flux))(images, weights, models)
    for n in range(3):
        one = M.conserve_flux(images[n], weights[n], models[n])
        np.testing.assert_allclose(batched[0][n], one[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(batched[1][n], one[1], rtol=1e-6)
    cent = jax.vmap(M.centroids)(models)
    np.testing.assert_allclose(cent[1], M.centroids(models[1]), rtol=1e-6)


def test_centroids_and_fluxes():
    h, w = 31, 27
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((yy - 12.3) ** 2 + (xx - 17.6) ** 2) / (2 * 2.0**2))
    models = np.zeros((2, 3, h, w), np.float32)
    models[0] = blob[None] * np.array([1.0, 2.0, 3.0])[:, None, None]
    cent = np.asarray(M.centroids(models))
    np.testing.assert_allclose(cent[0], [12.3, 17.6], atol=1e-3)
    assert np.isnan(cent[1]).all()  # no flux: no centroid
    flux = np.asarray(M.model_fluxes(models))
    np.testing.assert_allclose(flux[0], blob.sum() * np.array([1.0, 2.0, 3.0]), rtol=1e-5)
    np.testing.assert_array_equal(flux[1], 0)


def test_box_footprints_match_a_loop():
    boxes = np.array([[2, 3, 6, 9], [10, 0, 14, 4], [0, 10, 3, 12]])
    source = np.array([0, 0, 1])
    fp = np.asarray(M.box_footprints(boxes, source, 3, (16, 14), grow=2))
    expected = np.zeros((3, 16, 14), bool)
    for (y0, x0, y1, x1), s in zip(boxes, source, strict=True):
        expected[s, max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = True
    np.testing.assert_array_equal(fp, expected)
    assert not fp[2].any()  # a source without components has an empty footprint


def test_footprint_chi2_and_significance(rng):
    images, weights, models = _random_case(rng)
    model = models.sum(axis=0)
    fp = rng.uniform(size=(3,) + images.shape[1:]) > 0.5
    chi2, n = M.footprint_chi2(images, weights, model, fp)
    per_pixel = (weights * (images - model) ** 2).sum(axis=0)
    np.testing.assert_allclose(chi2, [per_pixel[f].sum() for f in fp], rtol=1e-5)
    np.testing.assert_array_equal(n, [(weights > 0)[:, f].sum() for f in fp])
    noise = np.full(images.shape[0], 1.5, np.float32)
    sig = np.asarray(M.significant_footprints(models, noise, 1.0))
    np.testing.assert_array_equal(sig, (np.abs(models) >= 1.5).any(axis=1))
    np.testing.assert_allclose(M.chi(images, weights, model),
                               np.sqrt(weights) * (images - model), rtol=1e-6)


def test_lite_reference_fluxes(lite_result, reference_fit):
    """On scarlet lite's own fitted model, the fluxes and the re-distributed fluxes are
    scarlet lite's (final_source_fluxes, final_source_fluxes_conserved)."""
    m = M.measure(lite_result)
    ref = reference_fit["final_source_fluxes"]
    np.testing.assert_allclose(m.fluxes, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    ref_c = reference_fit["final_source_fluxes_conserved"]
    np.testing.assert_allclose(m.conserved_fluxes, ref_c, rtol=2e-3,
                               atol=1e-4 * np.abs(ref_c).max())
    _, flux = M.redistribute_flux(lite_result)
    np.testing.assert_allclose(flux, m.conserved_fluxes, rtol=1e-6)


def test_measure_a_fit(fitted):
    m = M.measure(fitted)
    s, b = fitted.n_sources, fitted.observation.n_bands
    assert m.fluxes.shape == (s, b) and m.conserved_fluxes.shape == (s, b)
    assert m.centroids.shape == (s, 2) and m.chi2.shape == (s,)
    np.testing.assert_allclose(m.fluxes, fitted.source_fluxes, rtol=1e-4, atol=1e-4)
    # each centroid lies near its catalog center
    assert np.all(np.hypot(*(m.centroids - fitted.centers).T) < 3.0)
    assert np.all(m.n_pixels > 0) and np.all(np.isfinite(m.chi2_per_pixel))
    assert np.all((m.chi2_per_pixel > 0.3) & (m.chi2_per_pixel < 10))
    np.testing.assert_array_equal(m.n_components, np.bincount(fitted.component_source))
    # the re-distributed images of all sources add up to the data where every model is
    # positive and inside every footprint
    images, flux = M.redistribute_flux(fitted)
    np.testing.assert_allclose(images.sum(axis=(-2, -1)), flux, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(M.residual_image(fitted), fitted.residual, atol=1e-6)
    table = M.measurement_table(m)
    assert list(table)[:3] == ["source", "y", "x"]
    assert all(len(v) == s for v in table.values())
    assert f"flux_conserved_{fitted.observation.bands[0]}" in table
    fp = M.source_footprints(fitted)
    assert fp.shape == (s,) + fitted.observation.shape[1:] and fp.any(axis=(1, 2)).all()
    assert (M.source_footprints(fitted, "box") >= fp).all()
    with pytest.raises(ValueError, match="kind"):
        M.source_footprints(fitted, "nope")


# ------------------------------------------------------------- clean numbers and flags


def test_source_flags_bits():
    chi = np.array([1.0, 3.5, np.nan, 2.9])
    floor = np.array([[False, False], [False, False], [True, True], [True, False]])
    flags = M.source_flags(chi, 1.0, floor)
    assert flags.tolist() == [0, M.FLAGS["chi2"], M.FLAGS["zero_flux"], M.FLAGS["zero_band"]]
    assert (M.source_flags(chi, 2.0, floor, converged=False) & M.FLAGS["not_converged"]).all()
    assert M.flag_names(M.FLAGS["chi2"] | M.FLAGS["zero_band"]) == "chi2|zero_band"
    assert M.flag_names(0) == ""


def test_floor_flux_reported_as_zero_and_flagged(fitted):
    """A source whose spectrum went to the 1e-20 floor has flux 0 (not 1e-20-ish), zero
    flux-conserved flux, and the zero_flux flag; the other sources are untouched."""
    import dataclasses

    lost = 1
    spectra = fitted.spectra.copy()
    spectra[fitted.component_source == lost] = 1e-20
    res = dataclasses.replace(fitted, spectra=spectra)
    m = M.measure(res)
    assert np.all(m.fluxes[lost] == 0) and np.all(m.conserved_fluxes[lost] == 0)
    assert m.flags[lost] & M.FLAGS["zero_flux"]
    keep = np.arange(res.n_sources) != lost
    assert np.all(m.fluxes[keep] > 0)
    assert not np.any(m.flags[keep] & (M.FLAGS["zero_flux"] | M.FLAGS["zero_band"]))
    table = M.measurement_table(m)
    np.testing.assert_array_equal(table["flags"], m.flags)


def test_conserved_fluxes_never_negative(fitted):
    """Negative data (noise around a faint source) never gives a negative flux-conserved
    flux; the ratio weights are in [0, 1]."""
    import dataclasses

    obs = fitted.observation
    res = dataclasses.replace(fitted, observation=dataclasses.replace(obs, images=-obs.images))
    m = M.measure(res)
    assert np.all(m.conserved_fluxes >= 0)
    assert np.all(m.conserved_fluxes == 0)  # every redistributed sum is negative here
    _, flux = M.redistribute_flux(res)
    assert np.all(flux >= 0)


def test_chi2_flag_marks_a_badly_fitted_source(fitted):
    """A source whose model is removed leaves its light in the residual: flagged chi2."""
    import dataclasses

    m0 = M.measure(fitted)
    bright = int(np.argmax(m0.fluxes.sum(axis=1)))
    spectra = fitted.spectra.copy()
    spectra[fitted.component_source == bright] *= 0.2
    m = M.measure(dataclasses.replace(fitted, spectra=spectra))
    assert m.flags[bright] & M.FLAGS["chi2"]
    assert not m0.flags[bright] & M.FLAGS["chi2"]
