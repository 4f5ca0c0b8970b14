import numpy as np
import pytest

from scarlet_jax.datasets import load_hsc_cosmos_35_arrays
from scarlet_jax.fft import next_fast_len
from scarlet_jax.psf import integrated_circular_gaussian, match_kernel


@pytest.mark.parametrize("n,expected", [(1, 1), (7, 8), (11, 12), (61, 64), (97, 100), (101, 108)])
def test_next_fast_len(n, expected):
    assert next_fast_len(n) == expected


def test_model_psf_matches_reference(reference_fit):
    psf = integrated_circular_gaussian(0.8, 15)
    np.testing.assert_allclose(psf, reference_fit["model_psf"], atol=1e-8)
    assert psf.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (7, 7)


def test_diff_kernel_matches_reference(reference_fit):
    arrays = load_hsc_cosmos_35_arrays()
    kernel = match_kernel(arrays["psfs"], integrated_circular_gaussian())
    np.testing.assert_allclose(kernel, reference_fit["diff_kernel"], atol=1e-6)


def test_diff_kernel_reconvolves_to_psf():
    """model_psf convolved with the difference kernel gives back the observed PSF."""
    yy, xx = np.mgrid[-12:13, -12:13]
    psf = np.exp(-(yy**2 + xx**2) / (2 * 2.0**2))
    psf /= psf.sum()
    model = integrated_circular_gaussian(0.8, 15)
    kernel = match_kernel(psf[None], model)[0]
    full = np.zeros((25 + 14, 25 + 14))
    for (y, x), v in np.ndenumerate(model):
        full[y : y + 25, x : x + 25] += v * kernel
    np.testing.assert_allclose(full[7:-7, 7:-7], psf, atol=2e-4)
