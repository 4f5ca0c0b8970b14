"""Proximal optimisers in optax style: ``init(params) -> state`` and
``update(grads, state, params, prox, scale=1.0) -> (new_params, state)``.

Unlike optax, ``update`` returns the new parameters, because the proximal operator must see
the whole new point. ``params`` is any pytree (here :class:`~scarlet_jax.components.Components`);
step sizes come from a ``step_fn(params) -> pytree like params`` given to the factory,
times ``scale`` (a () factor: the fit halves it for a blend whose loss jumped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "ProximalOptimizer",
    "ProxAdamState",
    "FistaState",
    "proximal_adam",
    "fista",
]

Params = Any
ProxFn = Callable[[Params], Params]


class ProximalOptimizer(NamedTuple):
    """A pair of pure functions (optax's ``GradientTransformation``, returning params)."""

    init: Callable[[Params], Any]
    update: Callable[[Params, Any, Params, ProxFn], tuple[Params, Any]]


class ProxAdamState(NamedTuple):
    """State of :func:`proximal_adam`: the iteration count and the three moments ``m``,
    ``v``, ``vhat`` of each parameter leaf stacked in one array, ``moments`` (a pytree like
    params whose leaves are (3, *leaf.shape): the moments of one leaf are updated by one
    kernel and carried as one array, which a compiled fit step needs a third as many
    kernels for; see :func:`scarlet_jax.fit.make_step`). Build it from separate moments with
    :meth:`of`; read them as ``.m``, ``.v``, ``.vhat`` (one blend's state: no lane axis)."""

    count: jax.Array  # () int32
    moments: Params

    @classmethod
    def of(cls, count, m: Params, v: Params, vhat: Params) -> ProxAdamState:
        """The state of separate moment trees (numpy leaves stay numpy: host code)."""
        def stack(*xs):
            xp = np if all(isinstance(x, np.ndarray) for x in xs) else jnp
            return xp.stack(xs)

        return cls(count, jax.tree.map(stack, m, v, vhat))

    @property
    def m(self) -> Params:
        return jax.tree.map(lambda x: x[0], self.moments)

    @property
    def v(self) -> Params:
        return jax.tree.map(lambda x: x[1], self.moments)

    @property
    def vhat(self) -> Params:
        return jax.tree.map(lambda x: x[2], self.moments)


class FistaState(NamedTuple):
    """State of :func:`fista`: the extrapolated point ``z`` and the momentum scalar ``t``."""

    z: Params
    t: jax.Array  # () float32


def proximal_adam(
    step_fn: Callable[[Params], Params],
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    first_step_damping: float = 0.1,
) -> ProximalOptimizer:
    """Proximal AMSGrad as scarlet lite's default Adaprox (no bias correction).

    .. math::
      m \\leftarrow b_1 m + (1-b_1) g,\\quad v \\leftarrow b_2 v + (1-b_2) g^2,\\quad
      \\hat v \\leftarrow \\max(\\hat v, v),\\quad
      x \\leftarrow \\mathrm{prox}\\big(x - \\eta\\, m / \\sqrt{\\max(\\hat v, \\epsilon)}\\big)

    with the step ``eta`` from ``step_fn(params)``, damped by ``first_step_damping`` on the
    first update.

    Args:
      step_fn: params -> per-leaf step sizes (broadcastable to each leaf).
      b1, b2: moment decay rates.
      eps: floor on ``vhat`` (so the denominator is at least ``sqrt(eps)``).
      first_step_damping: factor applied to the first step.
    """

    def init(params):
        zeros = optax.tree.zeros_like(params)
        vhat = jax.tree.map(lambda x: jnp.full_like(x, -jnp.inf), params)
        return ProxAdamState.of(jnp.zeros((), jnp.int32), zeros, zeros, vhat)

    def update(grads, state, params, prox, scale=1.0):
        m = optax.tree.update_moment(grads, state.m, b1, 1)
        v = optax.tree.update_moment_per_elem_norm(grads, state.v, b2, 2)
        vhat = jax.tree.map(jnp.maximum, state.vhat, v)
        new_state = ProxAdamState.of(optax.safe_increment(state.count), m, v, vhat)
        damp = jnp.where(state.count == 0, first_step_damping, 1.0).astype(jnp.float32)
        damp = damp * scale  # exact when scale is 1
        steps = step_fn(params)
        moved = jax.tree.map(
            lambda x, s, mu, vh: x - damp * s * mu / jnp.sqrt(jnp.maximum(vh, eps)),
            params,
            steps,
            m,
            vhat,
        )
        return prox(moved), new_state

    return ProximalOptimizer(init, update)


def fista(step_fn: Callable[[Params], Params]) -> ProximalOptimizer:
    """Beck-Teboulle accelerated proximal gradient (FISTA) as in scarlet lite.

    ``y = z - eta * grad(x)``, ``x' = prox(y)``, ``t' = (1 + sqrt(1 + 4 t^2)) / 2``,
    ``z' = x' + (t - 1) / t' * (x' - x)``. As in scarlet lite the gradient is taken at the
    current ``x`` (the model is built from ``x``). ``step_fn`` must return steps below the
    inverse Lipschitz constant of each block (see :func:`scarlet_jax.fit.fista_steps`).
    """

    def init(params):
        return FistaState(z=params, t=jnp.ones((), jnp.float32))

    def update(grads, state, params, prox, scale=1.0):
        steps = step_fn(params)
        y = jax.tree.map(lambda z, s, g: z - scale * s * g, state.z, steps, grads)
        new = prox(y)
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * state.t**2))
        omega = (state.t - 1.0) / t_new
        z = jax.tree.map(lambda xn, x: xn + omega * (xn - x), new, params)
        return new, FistaState(z=z, t=t_new)

    return ProximalOptimizer(init, update)
