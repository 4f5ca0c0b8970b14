import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scarlet_jax.components import Components, FitData, Placement
from scarlet_jax.fft import fft_shape_for, kernel_to_fft
from scarlet_jax.likelihood import loss_and_grads, loss_reference, render

B, H, W, K, BOX = 3, 30, 26, 4, 9


def make_problem(rng, dtype=np.float32):
    m = BOX // 2
    kernel = np.abs(rng.normal(size=(B, 7, 7)))
    kernel /= kernel.sum(axis=(1, 2), keepdims=True)
    fft_shape = fft_shape_for((H, W), (7, 7))
    peaks = np.array([[0, 0], [12, 10], [H - 1, W - 1], [20, 3]], np.int32)
    origins = peaks - m
    yy = np.arange(BOX)
    bounds = np.stack([
        ((o[0] + yy >= 0) & (o[0] + yy < H))[:, None] & ((o[1] + yy >= 0) & (o[1] + yy < W))[None]
        for o in origins
    ]).astype(dtype)
    support = bounds.copy()
    support[1, :2] = 0  # a box smaller than its slot
    cdtype = np.complex128 if dtype == np.float64 else np.complex64
    data = FitData(
        images=jnp.asarray(rng.normal(size=(B, H, W)), dtype),
        weights=jnp.asarray(rng.uniform(0.5, 2.0, size=(B, H, W)), dtype),
        kernel_fft=jnp.asarray(kernel_to_fft(kernel, fft_shape), cdtype),
        noise_rms=jnp.ones((B,), dtype),
        fft_shape=fft_shape,
        margin=m,
    )
    placement = Placement(
        origins=jnp.asarray(origins), bounds=jnp.asarray(bounds), support=jnp.asarray(support),
        active=jnp.ones((K,), bool), source=jnp.arange(K, dtype=jnp.int32),
        peaks=jnp.asarray(peaks), symmetric=jnp.zeros((K,), bool),
    )
    comps = Components(
        spectra=jnp.asarray(rng.uniform(0.5, 2, size=(K, B)), dtype),
        morphs=jnp.asarray(rng.uniform(0, 1, size=(K, BOX, BOX)), dtype),
    )
    return data, placement, comps


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_hand_written_gradient_matches_autodiff_of_plain_loss(wrap, rng):
    data, placement, comps = make_problem(rng)
    loss, grads = wrap(loss_and_grads)(comps, placement, data)
    ref_loss, ref_grads = jax.value_and_grad(loss_reference)(comps, placement, data)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(grads.spectra, ref_grads.spectra, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(grads.morphs, ref_grads.morphs, rtol=1e-4, atol=1e-3)


def test_hand_written_gradient_x64(x64, rng):
    data, placement, comps = make_problem(rng, np.float64)
    _, grads = loss_and_grads(comps, placement, data)
    _, ref = jax.value_and_grad(loss_reference)(comps, placement, data)
    np.testing.assert_allclose(grads.spectra, ref.spectra, rtol=1e-10)
    np.testing.assert_allclose(grads.morphs, ref.morphs, rtol=1e-10, atol=1e-10)


def test_custom_vjp_render_gives_the_same_gradient(rng):
    """jax.grad through the custom-VJP render equals the hand-written chain."""
    data, placement, comps = make_problem(rng)

    def loss(c):
        return 0.5 * jnp.sum(data.weights * (data.images - render(c, placement, data)) ** 2)

    g = jax.grad(loss)(comps)
    _, grads = loss_and_grads(comps, placement, data)
    np.testing.assert_allclose(g.spectra, grads.spectra, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(g.morphs, grads.morphs, rtol=1e-4, atol=1e-3)


@pytest.fixture
def autodiff_traces(monkeypatch):
    """Count what JAX's forward- and reverse-mode autodiff trace (every ``jax.grad``,
    ``jax.vjp``, ``jax.jvp`` and ``jax.linearize`` goes through these traces)."""
    from jax._src.interpreters import ad

    seen = []
    for cls in (ad.JVPTrace, ad.LinearizeTrace):
        for name in [n for n in vars(cls) if n.startswith("process_")]:
            method = getattr(cls, name)

            def counted(self, *args, _method=method, _name=name, **kwargs):
                seen.append(_name)
                return _method(self, *args, **kwargs)

            monkeypatch.setattr(cls, name, counted)
    return seen


def test_fit_path_has_no_autodiff(rng, autodiff_traces):
    """Tracing the fit's step (and the whole fit) runs no autodiff: the gradient is the
    hand-written one. The same step with an autodiff gradient is caught (the control)."""
    from scarlet_jax.fit import fit_unjitted, init_state, make_step
    from scarlet_jax.options import resolve_options

    data, placement, comps = make_problem(rng)
    opts = resolve_options(max_iter=4, min_iter=1)
    state = init_state(data, placement, comps, opts.params, opts.config)
    jax.make_jaxpr(loss_and_grads)(comps, placement, data)
    jax.make_jaxpr(make_step(data, placement, opts.params, opts.config))(state)
    jax.make_jaxpr(lambda c: fit_unjitted(data, placement, c, opts.params, opts.config))(comps)
    assert autodiff_traces == []

    def autodiff(components, placement, data):
        return jax.value_and_grad(loss_reference)(components, placement, data)

    step = make_step(data, placement, opts.params, opts.config, gradient_fn=autodiff)
    jax.make_jaxpr(step)(state)
    assert len(autodiff_traces) > 0
