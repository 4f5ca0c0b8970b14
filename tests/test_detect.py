"""Tests for scarlet_jax.detect."""

from __future__ import annotations

import numpy as np
import pytest

from scarlet_jax.datasets import hsc_cosmos_35
from scarlet_jax.datasets.synthetic import synthetic_blend, synthetic_blends
from scarlet_jax.detect import band_pass, band_pass_noise, detect, detection_image
from scarlet_jax.errors import BadInputError
from scarlet_jax.observation import make_observation


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances between (y, x) rows."""
    return np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1))


def _snr(blend) -> np.ndarray:
    """(S,) matched-filter SNR of each source over all bands."""
    rms = blend.observation.noise_rms[None, :, None, None]
    return np.sqrt(((blend.true_images / rms) ** 2).sum(axis=(1, 2, 3)))


@pytest.fixture(scope="module")
def scenes():
    blends = synthetic_blends(50, seed=21)
    return [(b, detect(b.observation)) for b in blends]


def test_recovers_isolated_sources_without_duplicates(scenes):
    n_isolated = n_found = 0
    for blend, centers in scenes:
        assert centers.dtype == np.float32 and centers.ndim == 2 and centers.shape[1] == 2
        truth = blend.true_centers
        between = _distances(truth, truth)
        np.fill_diagonal(between, np.inf)
        isolated = (between.min(axis=1) > 10.0) & (_snr(blend) > 10.0)
        if len(centers) == 0:
            n_isolated += int(isolated.sum())
            continue
        # no two detections closer than min_separation
        among = _distances(centers, centers)
        np.fill_diagonal(among, np.inf)
        assert among.min() >= 3.0
        to_truth = _distances(truth, centers)  # (S, D)
        found = to_truth.min(axis=1) < 1.5
        n_isolated += int(isolated.sum())
        n_found += int((isolated & found).sum())
        # no true source claims two detections: each detection goes to its nearest true
        # source, and an isolated one has at most one detection within 3 px
        nearest = to_truth.argmin(axis=0)
        close = to_truth.min(axis=0) < 3.0
        owners = nearest[close]
        assert len(owners) == len(set(owners.tolist()))
        assert ((to_truth[isolated] < 3.0).sum(axis=1) <= 1).all()
    assert n_isolated > 100
    assert n_found / n_isolated >= 0.95


def test_few_false_detections(scenes):
    spurious = total = 0
    for blend, centers in scenes:
        if len(centers):
            spurious += int((_distances(blend.true_centers, centers).min(axis=0) > 3.0).sum())
            total += len(centers)
    assert total > 150
    assert spurious <= 0.02 * total


def test_pure_noise_gives_nothing():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 64, 64)).astype(np.float32)
    psf = np.zeros((3, 5, 5), np.float32)
    psf[:, 2, 2] = 1.0
    obs = make_observation(images, np.ones_like(images), psf)
    centers = detect(obs)
    assert centers.shape == (0, 2) and centers.dtype == np.float32


def test_brightest_first_and_subpixel():
    blend = synthetic_blend(3, n_sources=2, point_fraction=1.0, center_jitter=0.0)
    centers = detect(blend.observation)
    bright = np.argmax(blend.true_fluxes.sum(axis=1))
    assert len(centers) == 2
    assert np.hypot(*(centers[0] - blend.true_centers[bright])) < 0.5
    assert np.abs(_distances(blend.true_centers, centers).min(axis=1)).max() < 0.5


def test_noise_estimate_is_close_to_the_truth():
    blend = synthetic_blend(8, n_sources=8, noise_rms=2.0)
    image = detection_image(blend.observation)
    signal, finest = band_pass(image, (1, 2))
    valid = np.ones(image.shape, bool)
    # the detection image sum_b D_b / 4 has per-pixel noise sqrt(5) / 2
    from scarlet_jax.starlet import starlet_noise_covariance

    expected = np.sqrt(5) / 2 * np.sqrt(starlet_noise_covariance(3)[1:3, 1:3].sum())
    assert band_pass_noise(finest, valid, (1, 2)) == pytest.approx(expected, rel=0.1)


def test_max_sources():
    blend = synthetic_blend(1, n_sources=6, flux_range=(2000.0, 5000.0))
    found = detect(blend.observation)
    assert len(found) >= 4
    with pytest.raises(BadInputError, match=f"max_sources={len(found) - 1}"):
        detect(blend.observation, max_sources=len(found) - 1)
    np.testing.assert_array_equal(detect(blend.observation, max_sources=len(found)), found)
    np.testing.assert_array_equal(detect(blend.observation, max_sources=None), found)


def test_zero_weight_regions_produce_no_detections():
    blend = synthetic_blend(12, n_sources=6, flux_range=(1000.0, 5000.0))
    obs = blend.observation
    found = detect(obs)
    target = blend.true_centers[0]
    assert _distances(target[None], found).min() < 1.5
    mask = np.zeros(obs.images.shape[1:], bool)
    y, x = np.round(target).astype(int)
    mask[y - 6 : y + 7, x - 6 : x + 7] = True
    masked = make_observation(obs.images, obs.variance, obs.psfs, mask=mask)
    found_masked = detect(masked)
    iy, ix = np.round(found_masked).astype(int).T
    assert not mask[iy, ix].any()
    # the other sources are still found
    others = blend.true_centers[1:]
    outside = ~mask[tuple(np.round(others).astype(int).T)]
    before = _distances(others, found).min(axis=1) < 1.5
    after = _distances(others, found_masked).min(axis=1) < 1.5
    assert (after | ~before | ~outside).all()
    # all bands masked everywhere but a stripe: nothing outside the stripe
    stripe = np.ones_like(mask)
    stripe[:, 20:40] = False
    only = detect(make_observation(obs.images, obs.variance, obs.psfs, mask=stripe))
    assert ((only[:, 1] >= 19.5) & (only[:, 1] <= 39.5)).all()


def test_detect_image_argument():
    blend = synthetic_blend(2)
    obs = blend.observation
    np.testing.assert_array_equal(detect(obs, detect_image=detection_image(obs)), detect(obs))
    # the threshold does not depend on the image's normalisation
    np.testing.assert_allclose(
        detect(obs, detect_image=10.0 * obs.images.sum(axis=0)),
        detect(obs, detect_image=obs.images.sum(axis=0)),
        atol=1e-4,
    )
    with pytest.raises(BadInputError, match="detect_image"):
        detect(obs, detect_image=np.zeros((10, 10)))
    with pytest.raises(BadInputError, match="scales"):
        detect(obs, scales=(-1,))


def test_hsc_blend_finds_the_bright_catalog_sources():
    obs, catalog = hsc_cosmos_35()
    image = detection_image(obs)
    expected = np.einsum("bhw,b->hw", obs.images, 1.0 / obs.noise_rms.astype(np.float64) ** 2)
    np.testing.assert_allclose(image, expected, rtol=1e-5)
    centers = detect(obs)
    assert 4 <= len(centers) <= 12
    # catalogue sources 0-3 have PSF-weighted SNR 2363, 1645, 186, 75 (scarlet lite)
    to_catalog = _distances(catalog, centers)
    assert (to_catalog[:4].min(axis=1) < 1.5).all()
    # the two brightest come first, in order
    np.testing.assert_array_less(np.hypot(*(centers[:2] - catalog[:2]).T), 1.0)
