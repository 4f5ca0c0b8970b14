"""make_observation on good input: packing, dtypes, weights, noise, kernels, pytree."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import numpy as np
import pytest

from scarlet_jax.errors import BadInputError, InputWarning
from scarlet_jax.fft import convolve, fft_shape_for, kernel_to_fft
from scarlet_jax.observation import (
    MODEL_PSF_SIZE,
    Observation,
    check_observation,
    make_observation,
)
from scarlet_jax.psf import integrated_circular_gaussian


def gaussian_psfs(sigmas, size=11):
    r = np.arange(size) - size // 2
    r2 = r[:, None] ** 2 + r[None, :] ** 2
    psfs = np.stack([np.exp(-0.5 * r2 / s**2) for s in sigmas])
    return psfs / psfs.sum(axis=(1, 2), keepdims=True)


@pytest.fixture
def arrays(rng):
    images = rng.normal(size=(3, 24, 20))
    variance = rng.uniform(0.5, 2.0, size=(3, 24, 20))
    return images, variance, gaussian_psfs([1.6, 1.4, 1.2])


def quiet(*args, **kwargs) -> Observation:
    """make_observation that fails on any warning (good input must not warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return make_observation(*args, **kwargs)


def test_good_input_is_packed_as_float32(arrays):
    images, variance, psfs = arrays
    obs = quiet(images, variance, psfs, bands=["g", "r", "i"])
    assert obs.shape == (3, 24, 20) and obs.n_bands == 3 and obs.bands == ("g", "r", "i")
    for name in ("images", "variance", "weights", "psfs", "model_psf", "diff_kernel",
                 "noise_rms"):
        assert getattr(obs, name).dtype == np.float32, name
    np.testing.assert_allclose(obs.images, images, rtol=1e-6)
    np.testing.assert_allclose(obs.weights, 1 / variance, rtol=1e-6)
    np.testing.assert_allclose(obs.noise_rms, np.sqrt(variance).mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(obs.psfs.sum(axis=(1, 2)), 1, rtol=1e-6)
    assert obs.model_psf.shape == (MODEL_PSF_SIZE, MODEL_PSF_SIZE)
    check_observation(obs)


def test_default_band_names_and_single_band_input(arrays):
    images, variance, psfs = arrays
    assert quiet(images, variance, psfs).bands == ("0", "1", "2")
    one = quiet(images[0], variance[0], psfs[0])
    assert one.shape == (1, 24, 20) and one.bands == ("0",)


def test_a_2d_psf_serves_every_band(arrays):
    images, variance, psfs = arrays
    obs = quiet(images, variance, psfs[1])
    np.testing.assert_allclose(obs.psfs, np.broadcast_to(psfs[1], psfs.shape), rtol=1e-6)


def test_diff_kernel_turns_the_model_psf_into_each_band_psf(arrays):
    images, variance, psfs = arrays
    obs = quiet(images, variance, psfs)
    size = 31
    point = np.zeros((3, size, size), np.float32)
    model = integrated_circular_gaussian(0.8, MODEL_PSF_SIZE)
    h = MODEL_PSF_SIZE // 2
    point[:, size // 2 - h : size // 2 + h + 1, size // 2 - h : size // 2 + h + 1] = model
    fft_shape = fft_shape_for((size, size), obs.diff_kernel.shape[-2:])
    observed = np.asarray(convolve(point, kernel_to_fft(obs.diff_kernel, fft_shape), fft_shape))
    k = psfs.shape[-1] // 2
    centre = observed[:, size // 2 - k : size // 2 + k + 1, size // 2 - k : size // 2 + k + 1]
    np.testing.assert_allclose(centre, psfs, atol=2e-4)


def test_mask_gives_weight_zero_without_warning(arrays):
    images, variance, psfs = arrays
    mask2 = np.zeros((24, 20), bool)
    mask2[3:5, 7] = True
    mask3 = np.zeros((3, 24, 20), np.uint8)
    mask3[2, 10, 11] = 1
    for mask, bad in ((mask2, np.broadcast_to(mask2, (3, 24, 20))), (mask3, mask3 > 0)):
        obs = quiet(images, variance, psfs, mask=mask)
        assert (obs.weights[bad] == 0).all()
        np.testing.assert_allclose(obs.weights[~bad], 1 / variance[~bad], rtol=1e-6)
        np.testing.assert_allclose(obs.images, images, rtol=1e-6)  # masked data kept


def test_noise_rms_and_model_psf_may_be_given(arrays):
    images, variance, psfs = arrays
    model = integrated_circular_gaussian(1.0, 9)
    obs = quiet(images, variance, psfs, noise_rms=[1.0, 2.0, 3.0], model_psf=model)
    np.testing.assert_allclose(obs.noise_rms, [1, 2, 3])
    np.testing.assert_allclose(obs.model_psf, model / model.sum(), rtol=1e-6)


def test_noise_rms_of_a_band_without_valid_variance_is_the_mean_of_the_others(arrays):
    images, variance, psfs = arrays
    variance = variance.copy()
    variance[1] = -1.0
    with pytest.warns(InputWarning):
        obs = make_observation(images, variance, psfs)
    good = np.sqrt(variance[[0, 2]]).mean(axis=(1, 2))
    np.testing.assert_allclose(obs.noise_rms, [good[0], good.mean(), good[1]], rtol=1e-6)
    assert (obs.weights[1] == 0).all()


def test_observation_is_a_pytree_with_static_bands(arrays):
    obs = quiet(*arrays, bands=["a", "b", "c"])
    leaves, treedef = jax.tree.flatten(obs)
    assert len(leaves) == 7
    back = jax.tree.unflatten(treedef, leaves)
    assert back.bands == ("a", "b", "c")
    doubled = jax.jit(lambda o: jax.tree.map(lambda x: 2 * x, o))(obs)
    np.testing.assert_allclose(doubled.images, 2 * obs.images)


def test_check_observation_catches_edits_around_make_observation(arrays):
    obs = quiet(*arrays)
    nan_images = obs.images.copy()
    nan_images[1, 2, 3] = np.nan
    cases = [
        (dataclasses.replace(obs, images=nan_images), r"images \(3, 24, 20\).*band=1, y=2, x=3"),
        (dataclasses.replace(obs, weights=-obs.weights), "weights.*negative"),
        (dataclasses.replace(obs, weights=0 * obs.weights), "every pixel is masked"),
        (dataclasses.replace(obs, variance=obs.variance[:2]), "variance .* does not match"),
        (dataclasses.replace(obs, noise_rms=0 * obs.noise_rms), "noise_rms"),
        (dataclasses.replace(obs, bands=("x",)), "bands: 1 names for 3"),
        ("not an observation", "expected an Observation"),
    ]
    for bad, match in cases:
        with pytest.raises(BadInputError, match=match):
            check_observation(bad)


def test_integer_bit_mask_needs_bad_bits(arrays):
    """A survey bit mask (values other than 0/1) used to mask every non-zero pixel."""
    images, variance, psfs = arrays
    bits = np.zeros((3, 24, 20), np.int32)
    bits[:, :, :10] = 1 << 5  # DETECTED on half the image: not a defect
    bits[0, 2, 3] |= 1 << 0  # BAD
    bits[1, 4, 5] |= 1 << 3  # CR
    bits[2, 6, 7] = 1 << 8  # NO_DATA
    with pytest.raises(BadInputError, match=r"integer bit mask .*bits 0, 3, 5, 8 set.*bad_bits"):
        make_observation(images, variance, psfs, mask=bits)
    expected = np.zeros((3, 24, 20), bool)
    expected[0, 2, 3] = expected[1, 4, 5] = True
    planes = {"BAD": 0, "CR": 3, "DETECTED": 5, "NO_DATA": 8}
    for kwargs in (dict(bad_bits=0b1001), dict(bad_bits=[0, 3]),
                   dict(bad_bits=["BAD", "CR"], mask_planes=planes),
                   dict(bad_bits=["BAD", 3], mask_planes=planes)):
        obs = quiet(images, variance, psfs, mask=bits, **kwargs)
        np.testing.assert_array_equal(np.asarray(obs.weights) == 0, expected, str(kwargs))
    # a 0/1 integer mask is a bad-pixel mask; a boolean mask takes no bad_bits
    obs = quiet(images, variance, psfs, mask=expected.astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(obs.weights) == 0, expected)
    for kwargs, message in (
        (dict(mask=expected, bad_bits=[0]), "bad_bits applies to integer bit masks"),
        (dict(mask=bits, bad_bits=["SAT"], mask_planes=planes), "unknown mask plane 'SAT'"),
        (dict(mask=bits, bad_bits=["BAD"]), "no mask_planes given"),
        (dict(mask=bits, bad_bits=[64]), "bit numbers are 0..63"),
        (dict(mask=bits, bad_bits=-1), ">= 0"),
        (dict(mask=bits * 0.5, bad_bits=[0]), "not integers"),
        (dict(bad_bits=[0]), "bad_bits given without a mask"),
    ):
        with pytest.raises(BadInputError, match=message):
            make_observation(images, variance, psfs, **kwargs)
