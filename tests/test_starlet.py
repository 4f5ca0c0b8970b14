"""Tests for scarlet_jax.starlet."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scarlet_jax.starlet import (
    B3_KERNEL,
    default_scales,
    starlet_noise_covariance,
    starlet_noise_levels,
    starlet_reconstruct,
    starlet_transform,
)

H1 = np.asarray(B3_KERNEL)


def _jit(f):
    """jit with ``scales`` static where the function has it."""
    if f is starlet_transform:
        return jax.jit(f, static_argnames="scales")
    return jax.jit(f)


WRAPS = pytest.mark.parametrize("wrap", [lambda f: f, _jit], ids=["eager", "jit"])


def _dilated(d: int) -> np.ndarray:
    k = np.zeros(4 * d + 1)
    k[::d] = H1
    return k


@WRAPS
@pytest.mark.parametrize(
    "shape, scales",
    [((32, 32), None), ((58, 48), None), ((3, 17, 9), 4), ((2, 2, 5, 40), 6), ((1, 1), 2)],
)
def test_reconstruction_is_exact(wrap, shape, scales):
    rng = np.random.default_rng(0)
    image = (rng.normal(size=shape) * 10 + rng.exponential(size=shape) ** 3).astype(np.float32)
    coeffs = wrap(starlet_transform)(image, scales=scales)
    j = default_scales(shape) if scales is None else scales
    assert coeffs.shape == shape[:-2] + (j + 1,) + shape[-2:]
    assert coeffs.dtype == jnp.float32
    back = np.asarray(wrap(starlet_reconstruct)(coeffs))
    assert np.abs(back - image).max() <= 1e-5 * np.abs(image).max()


def test_vmap_matches_batched_call():
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(4, 21, 30)).astype(np.float32)
    vmapped = jax.jit(jax.vmap(lambda x: starlet_transform(x, scales=3)))(batch)
    batched = starlet_transform(batch, scales=3)
    single = starlet_transform(batch[2], scales=3)
    np.testing.assert_allclose(vmapped, batched, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vmapped[2], single, rtol=1e-6, atol=1e-6)


@WRAPS
def test_constant_image_has_no_wavelet_signal(wrap):
    image = np.full((19, 26), 3.5, np.float32)
    coeffs = np.asarray(wrap(starlet_transform)(image, scales=5))
    np.testing.assert_allclose(coeffs[:-1], 0.0, atol=1e-6)
    np.testing.assert_allclose(coeffs[-1], 3.5, rtol=1e-6)


def test_delta_response_is_the_b3_spline():
    n = 65
    image = np.zeros((n, n), np.float32)
    image[32, 32] = 1.0
    coeffs = np.asarray(starlet_transform(image, scales=3))
    # c_1 = h h^T, c_2 = (h * h_2)(h * h_2)^T with the kernel dilated by 2 (a trous holes)
    g1 = H1
    g2 = np.convolve(H1, _dilated(2))
    c1 = np.zeros((n, n))
    c1[30:35, 30:35] = np.outer(g1, g1)
    c2 = np.zeros((n, n))
    c2[26:39, 26:39] = np.outer(g2, g2)
    delta = np.asarray(image, np.float64)
    np.testing.assert_allclose(coeffs[0], delta - c1, atol=1e-7)
    np.testing.assert_allclose(coeffs[1], c1 - c2, atol=1e-7)
    assert coeffs[0][32, 32] == pytest.approx(1 - (6 / 16) ** 2, rel=1e-6)
    # the smoothing conserves flux away from the edges and is isotropic (symmetric)
    assert coeffs[-1].sum() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(coeffs[-1], coeffs[-1].T, atol=1e-8)
    np.testing.assert_allclose(coeffs[:-1].sum(axis=(-2, -1)), 0.0, atol=1e-6)


def test_matches_scipy_mirror_filtering():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(2)
    image = rng.normal(size=(13, 9))
    coeffs = np.asarray(starlet_transform(image.astype(np.float32), scales=4))
    c = image
    for j in range(4):  # dilation 8 is wider than the 9-pixel axis: repeated folding
        k = _dilated(2**j)
        smooth = ndimage.correlate1d(
            ndimage.correlate1d(c, k, axis=1, mode="mirror"), k, axis=0, mode="mirror"
        )
        np.testing.assert_allclose(coeffs[j], c - smooth, atol=2e-6)
        c = smooth
    np.testing.assert_allclose(coeffs[-1], c, atol=2e-6)


def test_integer_input_is_cast_to_float32():
    coeffs = starlet_transform(np.arange(64).reshape(8, 8), scales=2)
    assert coeffs.dtype == jnp.float32
    np.testing.assert_allclose(starlet_reconstruct(coeffs), np.arange(64).reshape(8, 8), atol=1e-4)


def test_default_scales():
    assert default_scales((64, 64)) == 5
    assert default_scales((58, 48)) == 4
    assert default_scales((5, 16, 16)) == 3
    assert default_scales((1024, 4096)) == 5
    assert default_scales((2, 2)) == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="scales"):
        starlet_transform(np.zeros((8, 8)), scales=0)
    with pytest.raises(ValueError, match="H, W"):
        starlet_transform(np.zeros(8))
    with pytest.raises(ValueError, match="empty"):
        default_scales((0, 5))


def test_noise_levels_match_the_known_table_and_simulation():
    levels = starlet_noise_levels(5)
    # Starck & Murtagh, "Astronomical Image and Data Analysis", table for the 2-d B3 starlet
    np.testing.assert_allclose(levels[:5], [0.8907, 0.2007, 0.0856, 0.0413, 0.0205], rtol=5e-3)
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(384, 384)).astype(np.float32)
    coeffs = np.asarray(starlet_transform(noise, scales=5), np.float64)[:, 40:-40, 40:-40]
    np.testing.assert_allclose(coeffs[:4].std(axis=(1, 2)), levels[:4], rtol=0.05)
    cov = starlet_noise_covariance(5)
    band = coeffs[1] + coeffs[2]
    assert band.std() == pytest.approx(np.sqrt(cov[1:3, 1:3].sum()), rel=0.05)
    # the planes sum to the (unit-variance) image: the whole covariance sums to 1
    assert cov.sum() == pytest.approx(1.0, rel=1e-12)
