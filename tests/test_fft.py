import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from scarlet_jax.fft import (
    convolve,
    convolve_op,
    convolve_transpose,
    fft_shape_for,
    kernel_to_fft,
)

SHAPE = (3, 20, 17)
KSHAPE = (7, 5)


@pytest.fixture
def kernel(rng):
    return rng.normal(size=(SHAPE[0],) + KSHAPE)


def direct_convolve(images, kernel):
    """'same' convolution with zero boundary, written as a sum of shifted copies."""
    b, h, w = images.shape
    kh, kw = kernel.shape[-2:]
    out = np.zeros_like(images, dtype=np.float64)
    padded = np.pad(images, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    for dy in range(kh):
        for dx in range(kw):
            # out[y, x] = sum k[dy, dx] * img[y + kh//2 - dy, x + kw//2 - dx]
            sl = padded[:, kh - 1 - dy : kh - 1 - dy + h, kw - 1 - dx : kw - 1 - dx + w]
            out += kernel[:, dy, dx, None, None] * sl
    return out


def test_fft_shape_is_5_smooth_and_large_enough():
    shape = fft_shape_for((58, 48), (43, 43))
    assert shape == (108, 96)


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_convolve_matches_direct(wrap, rng, kernel):
    fft_shape = fft_shape_for(SHAPE[1:], KSHAPE)
    x = rng.normal(size=SHAPE).astype(np.float32)
    conv = wrap(functools.partial(convolve, fft_shape=fft_shape))
    got = conv(x, kernel_to_fft(kernel, fft_shape))
    np.testing.assert_allclose(got, direct_convolve(x, kernel), atol=1e-4)


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_convolve_transpose_is_adjoint(wrap, rng, kernel):
    fft_shape = fft_shape_for(SHAPE[1:], KSHAPE)
    kfft = kernel_to_fft(kernel, fft_shape)
    x, y = (rng.normal(size=SHAPE).astype(np.float32) for _ in range(2))
    conv = wrap(functools.partial(convolve, fft_shape=fft_shape))
    conv_t = wrap(functools.partial(convolve_transpose, fft_shape=fft_shape))
    np.testing.assert_allclose(
        jnp.vdot(conv(x, kfft), y), jnp.vdot(x, conv_t(y, kfft)), rtol=1e-4
    )


def test_convolve_transpose_is_flipped_kernel(rng, kernel):
    fft_shape = fft_shape_for(SHAPE[1:], KSHAPE)
    y = rng.normal(size=SHAPE)
    got = convolve_transpose(jnp.asarray(y, jnp.float32), kernel_to_fft(kernel, fft_shape),
                             fft_shape)
    np.testing.assert_allclose(got, direct_convolve(y, kernel[:, ::-1, ::-1]), atol=1e-4)


def test_custom_vjp_matches_autodiff(rng, kernel):
    fft_shape = fft_shape_for(SHAPE[1:], KSHAPE)
    kfft = kernel_to_fft(kernel, fft_shape)
    x = jnp.asarray(rng.normal(size=SHAPE), jnp.float32)
    ct = jnp.asarray(rng.normal(size=SHAPE), jnp.float32)
    _, vjp_custom = jax.vjp(lambda a: convolve_op(a, kfft, fft_shape), x)
    _, vjp_auto = jax.vjp(lambda a: convolve(a, kfft, fft_shape), x)
    np.testing.assert_allclose(vjp_custom(ct)[0], vjp_auto(ct)[0], atol=1e-4)


def test_custom_vjp_check_grads_x64(x64, rng, kernel):
    fft_shape = fft_shape_for(SHAPE[1:], KSHAPE)
    kfft = jnp.asarray(kernel_to_fft(kernel, fft_shape), jnp.complex128)
    x = jnp.asarray(rng.normal(size=SHAPE))
    check_grads(lambda a: convolve_op(a, kfft, fft_shape), (x,), order=1, modes=["rev"])
