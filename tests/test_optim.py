import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scarlet_jax.components import Components
from scarlet_jax.optim import fista, proximal_adam


def params(rng):
    return Components(
        spectra=jnp.asarray(rng.uniform(1, 2, size=(3, 4)), jnp.float32),
        morphs=jnp.asarray(rng.uniform(0, 1, size=(3, 5, 5)), jnp.float32),
    )


def constant_steps(c):
    return Components(spectra=jnp.full_like(c.spectra, 0.1), morphs=jnp.float32(0.01))


def identity(c):
    return c


def reference_amsgrad(x, grads, step, b1=0.9, b2=0.999, eps=1e-8):
    """Plain numpy scarlet-lite amsgrad, several iterations with given gradients."""
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    vhat = np.full_like(x, -np.inf)
    for it, g in enumerate(grads):
        m = (1 - b1) * g + b1 * m
        v = (1 - b2) * g**2 + b2 * v
        vhat = np.maximum(vhat, v)
        x = x - step * m / np.sqrt(np.maximum(vhat, eps)) * (1 if it > 0 else 0.1)
    return x


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_proximal_adam_matches_reference(wrap, rng):
    p = params(rng)
    opt = proximal_adam(constant_steps)
    state = opt.init(p)
    update = wrap(lambda g, s, x: opt.update(g, s, x, identity))
    grads = [rng.normal(size=p.spectra.shape).astype(np.float32) for _ in range(4)]
    x = p
    for g in grads:
        x, state = update(Components(spectra=jnp.asarray(g), morphs=jnp.zeros_like(p.morphs)),
                          state, x)
    np.testing.assert_allclose(x.spectra, reference_amsgrad(np.asarray(p.spectra), grads, 0.1),
                               rtol=1e-5)
    np.testing.assert_allclose(x.morphs, p.morphs)  # zero gradient: no move
    assert int(state.count) == 4


@pytest.mark.parametrize("make", [proximal_adam, fista], ids=["adaprox", "fista"])
def test_state_is_a_valid_scan_carry(make, rng):
    """init and update return states with the same tree, shapes, dtypes and weak types."""
    p = params(rng)
    opt = make(constant_steps)
    s0 = opt.init(p)
    _, s1 = jax.jit(lambda s, x: opt.update(x, s, x, identity))(s0, p)
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    for a, b in zip(jax.tree.leaves(s0), jax.tree.leaves(s1), strict=False):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert getattr(a, "weak_type", False) == getattr(b, "weak_type", False)


def test_prox_sees_the_whole_new_point(rng):
    p = params(rng)
    opt = proximal_adam(constant_steps)

    def clip(c):
        return Components(spectra=jnp.clip(c.spectra, 0, 1.2), morphs=jnp.maximum(c.morphs, 0))

    g = Components(spectra=-jnp.ones_like(p.spectra), morphs=jnp.ones_like(p.morphs) * 100)
    x, _ = opt.update(g, opt.init(p), p, clip)
    assert float(x.spectra.max()) <= np.float32(1.2) and float(x.morphs.min()) >= 0


def test_fista_minimises_a_quadratic(rng):
    target = Components(spectra=jnp.ones((3, 4)), morphs=jnp.full((3, 5, 5), 0.5))
    x = params(rng)
    opt = fista(lambda c: jax.tree.map(lambda a: jnp.float32(0.5), c))
    state = opt.init(x)
    for _ in range(300):
        g = jax.tree.map(lambda a, t: a - t, x, target)
        x, state = opt.update(g, state, x, identity)
    np.testing.assert_allclose(x.spectra, target.spectra, atol=1e-4)
    np.testing.assert_allclose(x.morphs, target.morphs, atol=1e-4)
