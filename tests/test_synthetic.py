"""Tests for scarlet_jax.datasets.synthetic."""

from __future__ import annotations

import numpy as np
import pytest

from scarlet_jax.datasets.synthetic import SyntheticBlend, synthetic_blend, synthetic_blends
from scarlet_jax.observation import Observation


@pytest.fixture(scope="module")
def blends() -> list[SyntheticBlend]:
    return synthetic_blends(40, seed=5)


def _assert_same(a: SyntheticBlend, b: SyntheticBlend):
    for name in ("centers", "true_fluxes", "true_images", "true_centers"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("images", "variance", "weights", "psfs", "noise_rms"):
        np.testing.assert_array_equal(getattr(a.observation, name), getattr(b.observation, name))
    assert a.observation.bands == b.observation.bands


def test_deterministic_per_seed():
    _assert_same(synthetic_blend(3), synthetic_blend(3))
    listed = synthetic_blends(4, seed=9)
    again = synthetic_blends(6, seed=9)
    for i in range(4):
        _assert_same(listed[i], again[i])
        _assert_same(listed[i], synthetic_blend([9, i]))
    a, b = synthetic_blend(3), synthetic_blend(4)
    assert a.true_centers.shape != b.true_centers.shape or not np.array_equal(
        a.true_centers, b.true_centers
    )


def test_shapes_and_dtypes(blends):
    for blend in blends:
        obs = blend.observation
        assert isinstance(obs, Observation)
        n_bands, height, width = obs.images.shape
        assert (n_bands, height, width) == (5, 64, 64)
        assert obs.bands == ("g", "r", "i", "z", "y")
        n_src = len(blend.true_centers)
        assert 2 <= n_src <= 8
        assert blend.centers.shape == (n_src, 2)
        assert blend.true_centers.shape == (n_src, 2)
        assert blend.true_fluxes.shape == (n_src, n_bands)
        assert blend.true_images.shape == (n_src, n_bands, height, width)
        for arr in (blend.centers, blend.true_centers, blend.true_fluxes, blend.true_images):
            assert arr.dtype == np.float32
        assert obs.psfs.shape == (5, 25, 25)
        assert (blend.true_fluxes > 0).all()
        assert (blend.true_images >= 0).all()


def test_options_change_shapes():
    shapes = [(40, 40), (48, 64)]
    seen = set()
    for blend in synthetic_blends(12, seed=1, shape=shapes, n_bands=3, n_sources=3):
        seen.add(blend.observation.images.shape)
        assert blend.true_images.shape[:2] == (3, 3)
        assert blend.observation.bands == ("g", "r", "i")
    assert seen == {(3, 40, 40), (3, 48, 64)}
    tiny = synthetic_blend(0, shape=(9, 11), n_bands=2, n_sources=(1, 2))
    assert tiny.observation.images.shape == (2, 9, 11)
    assert tiny.observation.psfs.shape == (2, 17, 17)
    assert tiny.observation.bands == ("0", "1")


def test_noiseless_images_sum_to_the_true_fluxes(blends):
    rel = np.concatenate(
        [np.abs(b.true_images.sum(axis=(-2, -1)) / b.true_fluxes - 1).ravel() for b in blends]
    )
    assert np.median(rel) < 1e-3
    assert rel.max() < 0.05  # big galaxies near the margin lose a little light
    # with all light inside the image the sum is exact up to float32 rounding
    inside = synthetic_blend(2, shape=(96, 96), edge_margin=36, radius_range=(1.0, 2.0))
    np.testing.assert_allclose(inside.true_images.sum(axis=(-2, -1)), inside.true_fluxes, rtol=2e-4)


def test_centroids_are_the_true_centres():
    # symmetric profiles: the light-weighted centroid is the centre, in (y, x)
    blend = synthetic_blend(4, shape=(96, 96), edge_margin=36, radius_range=(1.0, 2.0))
    yy, xx = np.mgrid[:96, :96]
    for img, center in zip(blend.true_images.sum(axis=1), blend.true_centers, strict=True):
        cy, cx = (img * yy).sum() / img.sum(), (img * xx).sum() / img.sum()
        np.testing.assert_allclose([cy, cx], center, atol=1e-3)


def test_noise_level_is_as_stated():
    rms = np.array([0.5, 1.0, 2.0])
    blend = synthetic_blend(6, shape=(96, 96), n_bands=3, noise_rms=rms)
    obs = blend.observation
    residual = obs.images - blend.true_images.sum(axis=0)
    np.testing.assert_allclose(residual.std(axis=(1, 2)), rms, rtol=0.05)
    np.testing.assert_allclose(np.abs(residual.mean(axis=(1, 2))), 0.0, atol=0.1)
    np.testing.assert_allclose(obs.variance, np.broadcast_to(rms[:, None, None] ** 2, obs.shape))
    np.testing.assert_allclose(obs.noise_rms, rms, rtol=1e-6)


def test_centres_inside_and_separated(blends):
    errors = []
    for blend in blends:
        _, height, width = blend.observation.shape
        for c in (blend.centers, blend.true_centers):
            assert (c >= 0).all() and (c[:, 0] <= height - 1).all() and (c[:, 1] <= width - 1).all()
        tc = blend.true_centers
        assert (tc >= 8).all() and (tc <= 64 - 1 - 8).all()
        dist = np.hypot(*(tc[:, None] - tc[None]).transpose(2, 0, 1))
        np.fill_diagonal(dist, np.inf)
        assert dist.min() >= 5.0
        errors.append(blend.centers - tc)
    jitter = np.concatenate(errors).std()
    assert 0.2 < jitter < 0.4


def test_near_edge_placement_is_possible():
    edge = [synthetic_blend(i, edge_margin=0.0, n_sources=8).true_centers for i in range(10)]
    edge = np.concatenate(edge)
    distance = np.minimum(edge, 63 - edge).min(axis=1)
    assert (distance < 2).any()
    assert (distance >= 0).all()


def test_psfs_differ_per_band_and_are_normalised(blends):
    psfs = blends[0].observation.psfs
    np.testing.assert_allclose(psfs.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    r2 = (np.mgrid[:25, :25] - 12.0) ** 2
    second_moment = (psfs * r2.sum(axis=0)).sum(axis=(1, 2))
    assert (np.diff(second_moment) < 0).all()  # the PSF narrows from g to y
    # a point source is the PSF image, shifted: same per-band size about its true centre
    star = synthetic_blend(0, n_sources=1, point_fraction=1.0, psf_fwhm=3.0)
    assert star.true_images.shape[0] == 1
    yy, xx = np.mgrid[:64, :64]
    cy, cx = star.true_centers[0]
    img = star.true_images[0] / star.true_images[0].sum(axis=(1, 2), keepdims=True)
    star_moment = (img * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum(axis=(1, 2))
    psfs = star.observation.psfs
    psf_moment = (psfs * r2.sum(axis=0)).sum(axis=(1, 2))
    np.testing.assert_allclose(star_moment, psf_moment, rtol=2e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        synthetic_blend(0, shape=(64,))
    with pytest.raises(ValueError, match="n_sources"):
        synthetic_blend(0, n_sources=(3, 2))
    with pytest.raises(ValueError, match="noise_rms"):
        synthetic_blend(0, noise_rms=[1.0, 2.0])
    with pytest.raises(ValueError, match="psf_size"):
        synthetic_blend(0, psf_size=24)


def test_a_set_of_blends_is_mixed():
    """A set drawn with the defaults varies in source count and brightness, as the
    benchmarks' survey-like sets need (its speed is not a unit test's business)."""
    blends = synthetic_blends(50, seed=2)
    counts = [len(b.centers) for b in blends]
    assert min(counts) >= 2 and max(counts) <= 8 and len(set(counts)) >= 4
    fluxes = np.concatenate([np.asarray(b.true_fluxes).sum(axis=-1) for b in blends])
    assert fluxes.max() > 10 * fluxes.min()
