"""The fit: a jitted step (hand-written gradient, proximal update, box resizing) run by a
``lax.scan`` over blocks of iterations inside a ``lax.while_loop``.

``FitConfig`` is static (it changes shapes or control flow: part of the compile key);
``FitParams`` are traced scalars (sweeping them does not recompile). As in blackjax, the
step returns ``(state, info)``: ``FitState`` is the loop carry and holds only what the next
step needs; ``FitInfo`` is the per-step output of the scan (the loss), never carried. The
loss history is the stream of ``FitInfo`` rows: :func:`fit` gathers it into a (max_iter,)
array beside the loop, the lane scheduler on the host. A blend that has converged, diverged
or hit ``max_iter`` is frozen: its later steps change nothing (and their info rows say they
did not run), so the same code serves a ``vmap`` over blends with per-blend stops.

Box resizing and the host-side growth of a state are in :mod:`scarlet_jax.growth`, the
optimisers' step sizes in :mod:`scarlet_jax.step_sizes`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import stopping
from .components import Components, FitData, Placement, as_classes
from .constraints import ConstraintConfig, ConstraintParams, make_prox_classes
from .growth import resize_support
from .likelihood import loss_and_grads
from .optim import fista, proximal_adam
from .step_sizes import adaprox_steps, fista_steps

__all__ = [
    "OPTIMIZERS",
    "FitConfig",
    "FitParams",
    "FitState",
    "FitInfo",
    "make_optimizer",
    "init_fit_state",
    "make_step",
    "fit",
    "fit_unjitted",
    "init_state",
    "resume_state",
    "run_block",
    "run_until_done",
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
    """The loop carry of one blend: what the next step needs, nothing more.

    The per-component fields are tuples over the blend's size classes (one entry per
    class, see :mod:`scarlet_jax.packing`).

    Attributes:
      components: current parameters.
      support: (K_c, h_c, w_c) float32 current box of each component inside its slot.
      opt_state: optimiser state.
      loss0: () float32 loss at the first iteration (the divergence test's scale).
      recent: (W,) float32 losses of the last ``W = stop_window`` iterations, oldest first
        (NaN before the fit has run that many; the stopping rule's window).
      it: () int32 iterations done.
      done: () bool, converged, diverged or at ``max_iter``.
      converged: () bool.
      diverged: () bool: a step produced non-finite values (the state was reverted) or the
        loss blew up.
      needs_room: () bool: a resized box would reach past the edge of its slot box inside
        the image; that step is not applied and the loop stops, so the host can move the
        component to a larger class and go on (:func:`scarlet_jax.packing.regrow`),
        redoing the step there: results do not depend on the slot sizes.
      best_components, best_support, best_loss: the evaluated state with the lowest finite
        loss so far; :func:`finish_state` returns it when the final state is worse (so
        they are state: the fit's answer depends on them).
      overflow: (K_c,) bool per class: the components whose box needs a larger class (set
        with ``needs_room``).
      step_scale: () float32 factor on the optimiser's steps, 1 until the loss jumps: a
        state whose loss is above ``JUMP_FACTOR`` x (best loss + n_pixels) is dropped, the
        fit goes back to the best state with a fresh optimiser state and the steps cut by
        ``min(1/2, sqrt((best + n_pixels) / loss))`` (the loss grows about as the step
        squared), as long as the factor stays at or above ``MIN_STEP_SCALE``; a jump that
        needs a smaller one (a non-finite loss, absurd step options) is left to the
        divergence test, which stops the fit (``diverged``).
    """

    components: Components
    support: jax.Array
    opt_state: Any
    loss0: jax.Array
    recent: jax.Array
    it: jax.Array
    done: jax.Array
    converged: jax.Array
    diverged: jax.Array
    needs_room: jax.Array
    best_components: Components
    best_support: Any
    best_loss: jax.Array
    step_scale: jax.Array
    overflow: Any = ()


class FitInfo(NamedTuple):
    """What one step reports (the scan's output; never carried).

    Attributes:
      loss: () float32 loss of the state the step started from (NaN when not finite).
      ran: () bool, the step ran (False once the blend is done: its row is padding).
    """

    loss: jax.Array
    ran: jax.Array


def make_optimizer(config: FitConfig, data: FitData, params: FitParams):
    """The fit's :class:`~scarlet_jax.optim.ProximalOptimizer`: FISTA or proximal AMSGrad
    with scarlet lite's step sizes (built once per fit)."""
    if config.optimizer == "fista":
        return fista(fista_steps(data, params))
    return proximal_adam(adaprox_steps(data, params))


def init_fit_state(components, placement, optimizer, config: FitConfig) -> FitState:
    """The state before the first step (``optimizer`` from :func:`make_optimizer`;
    ``components``/``placement``: one class or a tuple of classes, the state holds tuples)."""
    f32 = jnp.float32
    components, places = as_classes(components), as_classes(placement)
    support = tuple(p.support.astype(f32) for p in places)
    return FitState(
        components=components,
        support=support,
        opt_state=optimizer.init(components),
        loss0=jnp.array(jnp.inf, f32),
        recent=jnp.full((stopping.window_size(config.stop_window),), jnp.nan, f32),
        it=jnp.zeros((), jnp.int32),
        done=jnp.array(config.max_iter == 0),
        converged=jnp.zeros((), bool),
        diverged=jnp.zeros((), bool),
        needs_room=jnp.zeros((), bool),
        best_components=components,
        best_support=support,
        best_loss=jnp.array(jnp.inf, f32),
        step_scale=jnp.ones((), f32),
        overflow=tuple(jnp.zeros(p.active.shape, bool) for p in places),
    )


# A loss above JUMP_FACTOR x (best loss + n_pixels) is an optimiser overshoot (e.g. a first
# Adam step on a bright, wide-kernel spectrum): the fit backs off (see FitState.step_scale).
JUMP_FACTOR = 10.0
MIN_STEP_SCALE = 1e-4


def _all_finite(tree) -> jax.Array:
    """() bool: every float leaf of ``tree`` is finite.

    ``x * 0`` is 0 for a finite ``x`` and NaN for an infinite or NaN one, so the sum of the
    ``x * 0`` of all leaves of one shape is NaN exactly when one of their values is not
    finite: one elementwise sum and one reduction per leaf shape (XLA compiles a kernel per
    reduction; a per-leaf ``all(isfinite(x))`` was ~15% of a block program's kernels)."""
    by_shape: dict = {}
    for x in jax.tree.leaves(tree):
        if jnp.issubdtype(x.dtype, jnp.floating):
            zero = x * jnp.zeros((), x.dtype)
            by_shape[x.shape] = zero if x.shape not in by_shape else by_shape[x.shape] + zero
    total = sum((jnp.sum(z, dtype=jnp.float32) for z in by_shape.values()),
                jnp.zeros((), jnp.float32))
    return jnp.isfinite(total)


def make_step(
    data: FitData,
    placement: Placement,
    params: FitParams,
    config: FitConfig,
    gradient_fn=loss_and_grads,
    optimizer=None,
):
    """Return ``step(state) -> (state, info)``: one iteration of the fit of one blend.

    ``placement`` is a tuple over size classes (a lone :class:`Placement` is one class);
    the proximal operators and the box resizing run per class, each with its box shape.
    ``gradient_fn(components, placement, data) -> (loss, grads)`` defaults to the
    hand-written :func:`~scarlet_jax.likelihood.loss_and_grads`; benchmarks swap in an
    autodiff version to compare memory. ``optimizer`` is the one the state was made with
    (:func:`make_optimizer`; built here when None), so a fit builds it once.
    """
    if optimizer is None:
        optimizer = make_optimizer(config, data, params)
    places = as_classes(placement)
    prox_fn = make_prox_classes(config.constraints,
                                [tuple(p.bounds.shape[-2:]) for p in places])
    actives = tuple(p.active for p in places)
    symmetrics = tuple(p.symmetric for p in places)
    no_overflow = tuple(jnp.zeros(p.active.shape, bool) for p in places)
    n_pix = jnp.sum(data.weights > 0).astype(jnp.float32)

    def step(state: FitState) -> tuple[FitState, FitInfo]:
        current = tuple(p.replace(support=s) for p, s in zip(places, state.support, strict=True))
        loss, grads = gradient_fn(state.components, current, data)

        def prox(cs):
            return prox_fn(cs, state.support, actives, symmetrics, data.noise_rms,
                           params.constraints)

        components, opt_state = optimizer.update(grads, state.opt_state, state.components, prox,
                                                 scale=state.step_scale)
        support = state.support
        overflow = no_overflow
        if config.resize:
            # only on resize iterations (a cond: a single blend skips the work; under vmap
            # it becomes a select, as a where would be)
            def resize(args):
                comps, sups = args
                out = [resize_support(c, p, s, data.noise_rms, params.constraints.bg_thresh,
                                      config.grow)
                       for c, p, s in zip(comps, places, sups, strict=True)]
                comps = tuple(c.replace(morphs=c.morphs * new)
                              for c, (new, _) in zip(comps, out, strict=True))
                return comps, tuple(o[0] for o in out), tuple(o[1] for o in out)

            def keep(args):
                return args + (no_overflow,)

            due = (state.it > 0) & (state.it % config.resize == 0)
            components, support, overflow = jax.lax.cond(due, resize, keep,
                                                         (components, support))
        needs_room = jnp.zeros((), bool)
        if config.resize and config.rebucket:
            needs_room = functools.reduce(jnp.logical_or, [jnp.any(o) for o in overflow])

        loss0 = jnp.where(state.it == 0, loss, state.loss0)
        converged = stopping.converged(state.recent, state.it, loss, params.e_rel,
                                       config.min_iter, config.stop_window)
        recorded = jnp.where(jnp.isfinite(loss), loss, jnp.nan)  # what the history shows
        recent = stopping.record(state.recent, recorded)
        finite = jnp.isfinite(loss) & _all_finite((components, opt_state))
        # the loss grows about as the step squared: the cut that brings it back to scale
        cut = jnp.minimum(0.5, jnp.sqrt((state.best_loss + n_pix) / loss))
        # an overshoot: drop this state, go back to the best one with the steps cut; a jump
        # that would need steps below MIN_STEP_SCALE (a non-finite loss, absurd step options)
        # is a divergence, not an overshoot
        jump = (~state.done & (loss > JUMP_FACTOR * (state.best_loss + n_pix))
                & (state.step_scale * cut >= MIN_STEP_SCALE))
        blew_up = loss > params.divergence_factor * (loss0 + n_pix)
        it = state.it + 1
        # What the step keeps, as one select per array (the state is large; selects over
        # all of it are a good part of a step's time):
        # - a blend that is already done does not move;
        # - a box that needs a larger class (``needs_room``): the step is not applied (no
        #   row of history, no iteration counted); the host moves the component up
        #   (packing.regrow) and the step is redone there;
        # - a step that went non-finite: the last finite state is kept, flagged, stopped.
        # - a jump (an overshoot): the best state comes back with a fresh optimiser state and
        #   the steps cut (``step_scale``); the iteration counts, its loss stays out of the
        #   stopping window.
        needs_room = needs_room & finite & ~state.done & ~jump
        moves = ~state.done & ~needs_room  # the step counts (a non-finite one too)
        go = moves & finite & ~jump  # its update is applied

        def pick(flag, upd, old):
            return jax.tree.map(lambda u, o: jnp.where(flag, u, o), upd, old)

        # the best evaluated state so far (``loss`` is the loss of ``state.components``)
        better = moves & jnp.isfinite(loss) & (loss < state.best_loss)
        restart = optimizer.init(state.best_components)
        new = FitState(
            components=pick(jump, state.best_components, pick(go, components, state.components)),
            support=pick(jump, state.best_support, pick(go, support, state.support)),
            opt_state=pick(jump, restart, pick(go, opt_state, state.opt_state)),
            loss0=jnp.where(go, loss0, state.loss0),
            recent=jnp.where(moves & ~jump, recent, state.recent),
            it=jnp.where(moves, it, state.it),
            done=state.done | needs_room | ((~finite | converged | blew_up) & ~jump)
            | (it >= config.max_iter),
            converged=jnp.where(go, converged, state.converged),
            diverged=jnp.where(moves, (~finite | blew_up) & ~jump, state.diverged),
            needs_room=state.needs_room | needs_room,
            best_components=pick(better, state.components, state.best_components),
            best_support=pick(better, state.support, state.best_support),
            best_loss=jnp.where(better, loss, state.best_loss),
            step_scale=jnp.where(jump, state.step_scale * cut, state.step_scale),
            overflow=pick(needs_room, overflow, pick(state.done, state.overflow, no_overflow)),
        )
        chex.assert_trees_all_equal_shapes_and_dtypes(new, state)  # a valid scan carry
        return new, FitInfo(loss=recorded, ran=~state.done & ~needs_room)

    return step


def fit_unjitted(
    data: FitData,
    placement: Placement,
    components: Components,
    params: FitParams,
    config: FitConfig,
    state: FitState | None = None,
) -> tuple[FitState, FitInfo]:
    """Run the fit of one blend to convergence or ``max_iter`` (pure; jit or vmap it).

    Blocks of ``config.block`` steps (a ``lax.scan``) run in a ``lax.while_loop`` until the
    blend is done; each block's :class:`FitInfo` rows are written into (max_iter,) arrays
    beside the loop (not in the state).

    Args:
      data, placement, components: the packed blend.
      params: traced numbers.
      config: static settings.
      state: optional state to continue from (e.g. after
        :func:`~scarlet_jax.packing.regrow`); its ``components`` are used and
        ``components`` is ignored.

    Returns:
      ``(state, info)``: the final :class:`FitState` (``needs_room`` set means it stopped
      early because a box needs a larger slot) and a :class:`FitInfo` of (max_iter,) arrays,
      row ``t`` for iteration ``t`` counted from ``state.it`` of the input state (NaN loss
      and ``ran`` False after the stop).
    """
    placement = as_classes(placement)
    optimizer = make_optimizer(config, data, params)
    if state is None:
        state = init_fit_state(components, placement, optimizer, config)
    else:
        state = resume_state(state, config)
    step = make_step(data, placement, params, config, optimizer=optimizer)
    n = config.max_iter
    info = FitInfo(loss=jnp.full((n,), jnp.nan, jnp.float32), ran=jnp.zeros((n,), bool))
    start = state.it

    def block(carry):
        state, info = carry
        first = state.it - start
        state, rows = jax.lax.scan(lambda s, _: step(s), state, None, length=config.block)
        # the rows that ran are a prefix of the block: write them at their iterations
        at = jnp.where(rows.ran, first + jnp.arange(config.block), n)
        info = jax.tree.map(lambda all_, new: all_.at[at].set(new, mode="drop"), info, rows)
        return state, info

    state, info = jax.lax.while_loop(lambda c: ~c[0].done, block, (state, info))
    return finish_state(data, placement, state), info


fit = jax.jit(fit_unjitted, static_argnames="config")
fit.__doc__ = "Jitted :func:`fit_unjitted` (``config`` is static)."


# ------------------------------------------------------------ pieces for the lane scheduler
# (scarlet_jax.scheduler runs these on a leading lane axis; each is pure, for one blend)


def init_state(data: FitData, placement: Placement, components: Components, params: FitParams,
               config: FitConfig) -> FitState:
    """The initial :class:`FitState` of one packed blend."""
    optimizer = make_optimizer(config, data, params)
    return init_fit_state(components, placement, optimizer, config)


def resume_state(state: FitState, config: FitConfig) -> FitState:
    """A stopped state made ready to go on (after :func:`~scarlet_jax.packing.regrow`
    moved it to a larger size class): ``needs_room`` cleared, ``done`` only at ``max_iter``."""
    return state._replace(done=state.it >= config.max_iter, needs_room=jnp.zeros((), bool))


def run_block(data: FitData, placement: Placement, state: FitState, params: FitParams,
              config: FitConfig) -> tuple[FitState, FitInfo]:
    """``config.block`` iterations of one blend (a ``lax.scan``); a blend that is done does
    not move. ``vmap`` it over lanes.

    Returns:
      ``(state, info)``: the state after the block and a :class:`FitInfo` of (block,) rows.
    """
    step = make_step(data, as_classes(placement), params, config)
    return jax.lax.scan(lambda s, _: step(s), state, None, length=config.block)


def run_until_done(data, placement, state, params: FitParams, config: FitConfig):
    """Up to ``config.block`` iterations of ONE blend, leaving the loop as soon as it is
    done: the steps are those of :func:`run_block`, but a blend that
    stops inside a block costs no more steps (a ``vmap`` over lanes would turn the exit
    into a select, so lanes use ``run_block``).

    Returns:
      ``(state, info)``: the state after the block and a :class:`FitInfo`
      of (block,) rows (``ran`` False and ``loss`` 0 for the steps not run).
    """
    step = make_step(data, as_classes(placement), params, config)
    n = config.block
    rows = FitInfo(loss=jnp.zeros((n,), jnp.float32), ran=jnp.zeros((n,), bool))

    def body(carry):
        i, s, rows = carry
        s, row = step(s)
        return i + 1, s, jax.tree.map(lambda rs, r: rs.at[i].set(r), rows, row)

    _, state, rows = jax.lax.while_loop(lambda c: (c[0] < n) & ~c[1].done, body,
                                        (jnp.zeros((), jnp.int32), state, rows))
    return state, rows


def finish_state(data: FitData, placement: Placement, state: FitState) -> FitState:
    """The state a stopped fit returns: its last update is evaluated here (the loop never
    does), and the best state seen replaces it when the last one is worse.

    Proximal Adam is not a descent method, and a fit must never end above its start. The
    start itself is scarlet lite's initialisation, not projected first, so the trajectory
    is lite's; if no later state beats it, it is what comes back. A state that stopped
    with ``needs_room`` is returned as it is (it goes on in a larger slot).
    """
    current = tuple(p.replace(support=s)
                    for p, s in zip(as_classes(placement), state.support, strict=True))
    final, _ = loss_and_grads(state.components, current, data)
    use_best = (~(final <= state.best_loss) | ~jnp.isfinite(final)) & ~state.needs_room
    return state._replace(
        components=jax.tree.map(lambda b, c: jnp.where(use_best, b, c),
                                state.best_components, state.components),
        support=jax.tree.map(lambda b, c: jnp.where(use_best, b, c),
                             state.best_support, state.support),
    )
