"""The fit: a jitted step (hand-written gradient, proximal update, box resizing) run by a
``lax.scan`` over blocks of iterations inside a ``lax.while_loop``.

``FitConfig`` is static (it changes shapes or control flow: part of the compile key);
``FitParams`` are traced scalars (sweeping them does not recompile); ``FitState`` is the
loop carry. A blend that has converged, diverged or hit ``max_iter`` is frozen: its later
steps change nothing, so the same code serves a ``vmap`` over blends with per-blend stops.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import stopping
from .components import Components, Placement
from .constraints import ConstraintConfig, ConstraintParams, make_prox, significant
from .likelihood import FitData, loss_and_grads
from .optim import ProxAdamState, fista, proximal_adam

__all__ = [
    "OPTIMIZERS",
    "FitConfig",
    "FitParams",
    "FitState",
    "init_fit_state",
    "make_step",
    "fit",
    "fit_unjitted",
    "resize_support",
    "grow_state",
    "init_state",
    "resume_state",
    "run_block",
    "finish_state",
]

OPTIMIZERS = ("adaprox", "fista")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Static settings of a fit (hashable). Build it with
    :func:`scarlet_jax.options.resolve_options` (``.config``): the defaults and checks of
    its fields live in the option table, :data:`scarlet_jax.options.OPTIONS`.

    Attributes:
      max_iter: maximum number of iterations (size of the loss history).
      min_iter: no convergence test before this iteration.
      optimizer: "adaprox" (proximal AMSGrad, scarlet lite's default) or "fista".
      resize: resize boxes every ``resize`` iterations (0: never).
      grow: pixels added around the significant pixels when a box is resized.
      block: iterations per ``lax.scan`` block between convergence checks of the loop.
      stop_window: consecutive small loss changes needed to stop (1: scarlet lite's rule;
        see :mod:`scarlet_jax.stopping`).
      constraints: which proximal operators run.
      rebucket: stop with ``needs_room`` when a box reaches its slot edge (the host then
        moves the blend to a larger slot box and continues).
    """

    max_iter: int
    min_iter: int
    optimizer: str
    resize: int
    grow: int
    block: int
    stop_window: int
    constraints: ConstraintConfig
    rebucket: bool = True


class FitParams(NamedTuple):
    """Traced numbers of a fit (float32 scalars)."""

    e_rel: jax.Array
    morph_step: jax.Array
    spectrum_step_noise: jax.Array  # spectrum step >= noise_rms * this (lite pipeline: 1/10)
    spectrum_step_rel: jax.Array  # spectrum step >= mean(spectrum) * this
    divergence_factor: jax.Array  # loss above this x (initial loss + n_pixels) = diverged
    constraints: ConstraintParams

    @classmethod
    def make(cls, *, e_rel, morph_step, spectrum_step_noise, spectrum_step_rel,
             divergence_factor, **constraint_params) -> FitParams:
        """float32 params from numbers (use :func:`scarlet_jax.options.resolve_options`
        (``.params``) for the defaults and checks of the option table)."""
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(
            f(e_rel),
            f(morph_step),
            f(spectrum_step_noise),
            f(spectrum_step_rel),
            f(divergence_factor),
            ConstraintParams.make(**constraint_params),
        )


class FitState(NamedTuple):
    """The loop carry of one blend.

    Attributes:
      components: current parameters.
      support: (K, h, w) float32 current box of each component inside its slot.
      opt_state: optimiser state.
      loss: () float32 loss of the last evaluated iteration (inf before the first).
      loss0: () float32 loss at the first iteration.
      it: () int32 iterations done.
      done: () bool, converged, diverged or at ``max_iter``.
      converged: () bool.
      diverged: () bool: a step produced non-finite values (the state was reverted) or the
        loss blew up.
      needs_room: () bool: a resized box reached the edge of its slot box inside the image;
        the loop stops so the host can re-bucket to a larger box and continue
        (:func:`grow_state`).
      history: (max_iter,) float32 loss per iteration, NaN after the stop.
      best_components, best_support, best_loss: the evaluated state with the lowest finite
        loss so far; :func:`fit_unjitted` returns it when the final state is worse.
    """

    components: Components
    support: jax.Array
    opt_state: Any
    loss: jax.Array
    loss0: jax.Array
    it: jax.Array
    done: jax.Array
    converged: jax.Array
    diverged: jax.Array
    needs_room: jax.Array
    history: jax.Array
    best_components: Components
    best_support: jax.Array
    best_loss: jax.Array


def _adaprox_steps(data: FitData, params: FitParams):
    def step_fn(c: Components) -> Components:
        rel = params.spectrum_step_rel * jnp.mean(c.spectra, axis=1, keepdims=True)
        spec = jnp.maximum(data.noise_rms[None, :] * params.spectrum_step_noise, rel)
        return Components(spectra=spec, morphs=params.morph_step)

    return step_fn


def fista_steps(data: FitData, params: FitParams):
    """Steps below the inverse Lipschitz constant of each block, including the weights
    (scarlet lite's FISTA ignores them and diverges with inverse-variance weights)."""
    # (B,) largest weight times the squared operator norm of the band's convolution (the
    # largest |FFT| of its difference kernel, > 1 when the PSF is narrower than the model's)
    knorm2 = jnp.max(jnp.abs(data.kernel_fft) ** 2, axis=(-2, -1))
    wmax = jnp.max(data.weights, axis=(-2, -1)) * knorm2
    tiny = jnp.float32(1e-30)

    def step_fn(c: Components) -> Components:
        morph_norm = jnp.sum(c.morphs**2, axis=(1, 2))  # (K,)
        spec = 0.5 / (wmax[None, :] * morph_norm[:, None] + tiny)
        lip_morph = jnp.sum(wmax[None, :] * c.spectra**2, axis=1)  # (K,)
        morph = 0.5 / (lip_morph + tiny)
        return Components(spectra=spec, morphs=morph[:, None, None])

    return step_fn


def make_optimizer(config: FitConfig, data: FitData, params: FitParams):
    if config.optimizer == "fista":
        return fista(fista_steps(data, params))
    return proximal_adam(_adaprox_steps(data, params))


def resize_support(components, placement: Placement, support, noise_rms, bg_thresh, grow):
    """New (K, h, w) support: bounding box of the significant pixels grown by ``grow``,
    clipped to the image; unchanged for a component without significant pixels. The box
    centre (the peak) always stays inside.

    Returns:
      ``(support, overflow)``: the new support and a (K,) bool that is True where the grown
      box would reach past the slot box at an edge that lies inside the image (the
      component needs a larger slot).
    """
    k, h, w = support.shape
    sig = significant(components.spectra, components.morphs, noise_rms, bg_thresh)
    sig = sig & (placement.bounds > 0)
    rows, cols = jnp.any(sig, axis=2), jnp.any(sig, axis=1)  # (K, h), (K, w)
    inside = placement.bounds > 0

    def span(mask, n, c, first_inside, last_inside):
        lo = jnp.minimum(jnp.argmax(mask, axis=1), c) - grow
        hi = jnp.maximum(n - 1 - jnp.argmax(mask[:, ::-1], axis=1), c) + grow
        idx = jnp.arange(n)[None, :]
        over = ((lo < 0) & first_inside) | ((hi > n - 1) & last_inside)
        return (idx >= lo[:, None]) & (idx <= hi[:, None]), over

    span_y, over_y = span(rows, h, h // 2, jnp.any(inside[:, 0, :], axis=1),
                          jnp.any(inside[:, -1, :], axis=1))
    span_x, over_x = span(cols, w, w // 2, jnp.any(inside[:, :, 0], axis=1),
                          jnp.any(inside[:, :, -1], axis=1))
    box = span_y[:, :, None] & span_x[:, None, :]
    new = box.astype(support.dtype) * placement.bounds
    has = jnp.any(rows, axis=1)
    overflow = has & placement.active & (over_y | over_x)
    return jnp.where(has[:, None, None], new, support), overflow


def init_fit_state(components, placement: Placement, optimizer, max_iter: int) -> FitState:
    f32 = jnp.float32
    return FitState(
        components=components,
        support=placement.support.astype(f32),
        opt_state=optimizer.init(components),
        loss=jnp.array(jnp.inf, f32),
        loss0=jnp.array(jnp.inf, f32),
        it=jnp.zeros((), jnp.int32),
        done=jnp.array(max_iter == 0),
        converged=jnp.zeros((), bool),
        diverged=jnp.zeros((), bool),
        needs_room=jnp.zeros((), bool),
        history=jnp.full((max_iter,), jnp.nan, f32),
        best_components=components,
        best_support=placement.support.astype(f32),
        best_loss=jnp.array(jnp.inf, f32),
    )


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.array(True))


def make_step(
    data: FitData,
    placement: Placement,
    params: FitParams,
    config: FitConfig,
    gradient_fn=loss_and_grads,
):
    """Return ``step(state) -> state``: one iteration of the fit of one blend.

    ``gradient_fn(components, placement, data) -> (loss, grads)`` defaults to the
    hand-written :func:`~scarlet_jax.likelihood.loss_and_grads`; benchmarks swap in an
    autodiff version to compare memory.
    """
    optimizer = make_optimizer(config, data, params)
    box_shape = tuple(placement.bounds.shape[-2:])
    prox_fn = make_prox(config.constraints, box_shape)
    n_pix = jnp.sum(data.weights > 0).astype(jnp.float32)

    def step(state: FitState) -> FitState:
        current = placement.replace(support=state.support)
        loss, grads = gradient_fn(state.components, current, data)

        def prox(c):
            return prox_fn(c, state.support, placement.active, placement.symmetric,
                           data.noise_rms, params.constraints)

        components, opt_state = optimizer.update(grads, state.opt_state, state.components, prox)
        support = state.support
        needs_room = jnp.zeros((), bool)
        if config.resize:
            # only on resize iterations (a cond: a single blend skips the work; under vmap
            # it becomes a select, as a where would be)
            def resize(args):
                comps, sup = args
                new, overflow = resize_support(comps, placement, sup, data.noise_rms,
                                               params.constraints.bg_thresh, config.grow)
                return comps.replace(morphs=comps.morphs * new), new, jnp.any(overflow)

            def keep(args):
                return args + (jnp.zeros((), bool),)

            due = (state.it > 0) & (state.it % config.resize == 0)
            components, support, overflow = jax.lax.cond(due, resize, keep,
                                                         (components, support))
            if config.rebucket:
                needs_room = overflow

        loss0 = jnp.where(state.it == 0, loss, state.loss0)
        converged = stopping.converged(state.history, state.it, loss, params.e_rel,
                                       config.min_iter, config.stop_window)
        finite = jnp.isfinite(loss) & _all_finite(components) & _all_finite(opt_state)
        blew_up = loss > params.divergence_factor * (loss0 + n_pix)
        it = state.it + 1
        # the best evaluated state so far (``loss`` is the loss of ``state.components``)
        better = jnp.isfinite(loss) & (loss < state.best_loss)
        best = dict(
            best_components=jax.tree.map(lambda b, c: jnp.where(better, c, b),
                                         state.best_components, state.components),
            best_support=jnp.where(better, state.support, state.best_support),
            best_loss=jnp.where(better, loss, state.best_loss),
        )
        new = FitState(
            components=components,
            support=support,
            opt_state=opt_state,
            loss=loss,
            loss0=loss0,
            it=it,
            done=converged | (it >= config.max_iter) | blew_up | needs_room,
            converged=converged,
            diverged=blew_up,
            needs_room=needs_room & ~converged & (it < config.max_iter) & ~blew_up,
            history=state.history.at[state.it].set(loss),
            **best,
        )
        # a step that went non-finite: keep the last finite state, flag it, stop
        reverted = state._replace(
            done=jnp.array(True), diverged=jnp.array(True), it=it,
            history=state.history.at[state.it].set(jnp.where(jnp.isfinite(loss), loss, jnp.nan)),
            **best,
        )
        new = jax.tree.map(lambda good, bad: jnp.where(finite, good, bad), new, reverted)
        # a blend that is already done does not move
        return jax.tree.map(lambda old, upd: jnp.where(state.done, old, upd), state, new)

    return step


def fit_unjitted(
    data: FitData,
    placement: Placement,
    components: Components,
    params: FitParams,
    config: FitConfig,
    state: FitState | None = None,
) -> FitState:
    """Run the fit of one blend to convergence or ``max_iter`` (pure; jit or vmap it).

    Args:
      data, placement, components: the packed blend.
      params: traced numbers.
      config: static settings.
      state: optional state to continue from (e.g. after :func:`grow_state`); its
        ``components`` are used and ``components`` is ignored.

    Returns:
      The final :class:`FitState`; ``needs_room`` set means it stopped early because a box
      needs a larger slot.
    """
    optimizer = make_optimizer(config, data, params)
    if state is None:
        state = init_fit_state(components, placement, optimizer, config.max_iter)
    else:
        state = state._replace(done=state.it >= config.max_iter, needs_room=jnp.zeros((), bool))
    step = make_step(data, placement, params, config)

    def block(state):
        return jax.lax.scan(lambda s, _: (step(s), None), state, None, length=config.block)[0]

    state = jax.lax.while_loop(lambda s: ~s.done, block, state)
    return finish_state(data, placement, state)


fit = jax.jit(fit_unjitted, static_argnames="config")
fit.__doc__ = "Jitted :func:`fit_unjitted` (``config`` is static)."


def grow_state(state: FitState, pad: int) -> FitState:
    """Host-side: embed a fit state in slot boxes ``2 * pad`` pixels larger, centred.

    Morphs, supports and the optimiser's per-pixel state are padded; new pixels start as
    a fresh optimiser would see them (moments 0, ``vhat`` -inf).
    """

    def grow(x, fill=0.0):
        x = np.asarray(x)
        if x.ndim == 3:
            return np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=fill)
        return x

    opt = state.opt_state
    if isinstance(opt, ProxAdamState):
        opt = ProxAdamState(
            count=opt.count,
            m=jax.tree.map(grow, opt.m),
            v=jax.tree.map(grow, opt.v),
            vhat=jax.tree.map(lambda x: grow(x, -np.inf), opt.vhat),
        )
    else:
        opt = jax.tree.map(grow, opt)
    return state._replace(
        components=jax.tree.map(grow, state.components),
        support=grow(state.support),
        opt_state=opt,
        best_components=jax.tree.map(grow, state.best_components),
        best_support=grow(state.best_support),
    )


# ------------------------------------------------------------ pieces for the lane scheduler
# (scarlet_jax.scheduler runs these on a leading lane axis; each is pure, for one blend)


def init_state(data: FitData, placement: Placement, components: Components, params: FitParams,
               config: FitConfig) -> FitState:
    """The initial :class:`FitState` of one packed blend."""
    optimizer = make_optimizer(config, data, params)
    return init_fit_state(components, placement, optimizer, config.max_iter)


def resume_state(state: FitState, config: FitConfig) -> FitState:
    """A stopped state made ready to go on (after :func:`grow_state` moved it to a larger
    slot box): ``needs_room`` cleared, ``done`` only at ``max_iter``."""
    return state._replace(done=state.it >= config.max_iter, needs_room=jnp.zeros((), bool))


def run_block(data: FitData, placement: Placement, state: FitState, params: FitParams,
              config: FitConfig) -> FitState:
    """``config.block`` iterations of one blend (a ``lax.scan``); a blend that is done does
    not move. ``vmap`` it over lanes."""
    step = make_step(data, placement, params, config)
    return jax.lax.scan(lambda s, _: (step(s), None), state, None, length=config.block)[0]


def finish_state(data: FitData, placement: Placement, state: FitState) -> FitState:
    """The state a stopped fit returns: its last update is evaluated here (the loop never
    does), and the best state seen replaces it when the last one is worse.

    Proximal Adam is not a descent method, and a fit must never end above its start. The
    start itself is scarlet lite's initialisation, not projected first, so the trajectory
    is lite's; if no later state beats it, it is what comes back. A state that stopped
    with ``needs_room`` is returned as it is (it goes on in a larger slot).
    """
    final, _ = loss_and_grads(state.components, placement.replace(support=state.support), data)
    use_best = (~(final <= state.best_loss) | ~jnp.isfinite(final)) & ~state.needs_room
    return state._replace(
        components=jax.tree.map(lambda b, c: jnp.where(use_best, b, c),
                                state.best_components, state.components),
        support=jnp.where(use_best, state.best_support, state.support),
    )
