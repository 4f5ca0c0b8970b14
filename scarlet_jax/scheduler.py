"""The lane scheduler: each bucket fits its blends in a fixed number of lanes.

A bucket's device state is one pytree ``(data, placement, state)`` whose leaves have a
leading lane axis ``L``. One jitted program (:func:`advance`) runs ``config.block``
iterations on every lane (a ``vmap`` over lanes of a ``lax.scan`` of the step). Between
blocks the host reads the previous block's ``(done, needs_room)`` flags and its per-step
:class:`~scarlet_jax.fit.FitInfo` rows (the next block is already dispatched, so the device
does not wait), appends each lane's losses to its job's ``losses``, retires the finished lanes
(:func:`read_lane`: one lane's final state, fetched later by a host thread) and writes the
next blends of the bucket's queue into the free lanes (:func:`write_lane`, donated: one
lane's slice is updated in place). A lane never sees another blend's values: a write
replaces every leaf of the lane, and an empty lane holds a finished (frozen) state.

Device work per blend is about its own iteration count (plus at most two blocks between
its stop and its retirement), not the slowest blend's.

A bucket of ONE lane on one device (the CPU default) holds the blend's own arrays (no lane
axis) and runs :func:`advance_one`, which leaves its block as soon as the blend stops
(:func:`~scarlet_jax.fit.run_until_done`) and then returns the final state: one program per
bucket besides the start of a fit, with no lane helpers. Its
programs come from the executable store (:func:`~scarlet_jax.cache.compiled_program`).
"""

from __future__ import annotations

import ast
import functools
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from .cache import compiled_program, stored_labels
from .components import BucketKey
from .fit import FitConfig, FitParams, finish_state, init_state, run_block, run_until_done

__all__ = ["advance", "advance_one", "write_lane", "read_lane", "start_state", "LaneRun",
           "block_label", "stored_blocks", "prepare_solo"]


def block_label(key, config: FitConfig) -> str:
    """The executable store's label of bucket ``key``'s one-lane block program."""
    return f"advance_one {tuple(key)!r} {config!r}"


def stored_blocks(config: FitConfig) -> list[BucketKey]:
    """The buckets whose one-lane block program for ``config`` is in the executable store
    (the labels of :func:`block_label`, read back)."""
    head, tail = "advance_one ", f" {config!r}"
    out = []
    for label in stored_labels(head):
        if label.endswith(tail):
            try:
                out.append(BucketKey(*ast.literal_eval(label[len(head):-len(tail)])))
            except (ValueError, SyntaxError, TypeError):  # not a key: skip it
                continue
    return out


@functools.partial(jax.jit, static_argnames="config", donate_argnums=(2,))
def advance(data, placement, state, params: FitParams, config: FitConfig):
    """``config.block`` iterations on every lane (one lane runs the blend's own program:
    XLA compiles a ``vmap`` over one lane differently, and rounds differently).

    Returns:
      ``(state, flags, info)``: the new (L, ...) state, (2, L) bool ``[done, needs_room]``
      and the block's :class:`~scarlet_jax.fit.FitInfo` rows, (L, block) arrays.
    """
    if state.done.shape[0] == 1:  # one lane: the blend's own program, no vmap (static)
        one = jax.tree.map(lambda x: x[0], (data, placement, state))
        new, info = jax.tree.map(lambda x: x[None], run_block(*one, params, config))
    else:
        new, info = jax.vmap(lambda d, p, s: run_block(d, p, s, params, config))(
            data, placement, state)
    return new, jax.numpy.stack([new.done, new.needs_room]), info


@functools.partial(jax.jit, static_argnames="config", donate_argnums=(2,))
def advance_one(data, placement, state, params: FitParams, config: FitConfig):
    """Up to ``config.block`` iterations of ONE blend (no lane axis;
    :func:`~scarlet_jax.fit.run_until_done`), and its final state once it stops: the
    program of a one-lane bucket (the CPU default), which then needs neither
    :func:`write_lane` nor :func:`read_lane` (the lane is the blend's own arrays).

    Returns:
      ``(state, flags, info)``: the new state (:func:`~scarlet_jax.fit.finish_state` of it
      when done: a real branch, one blend is not vmapped), (2,) bool ``[done, needs_room]``
      and the block's :class:`~scarlet_jax.fit.FitInfo` rows, (block,) arrays (the rows
      after the blend stopped are padding: ``ran`` False).
    """
    new, info = run_until_done(data, placement, state, params, config)
    new = jax.lax.cond(new.done, lambda s: finish_state(data, placement, s), lambda s: s, new)
    return new, jnp.stack([new.done, new.needs_room]), info


@functools.partial(jax.jit, donate_argnums=(0,))
def write_lane(lanes, index, one):
    """``lanes`` with lane ``index`` replaced by ``one`` (same tree without the lane axis)."""
    return jax.tree.map(lambda ls, x: jax.lax.dynamic_update_index_in_dim(ls, x, index, 0),
                        lanes, one)


@jax.jit
def read_lane(lanes, index):
    """The final :class:`~scarlet_jax.fit.FitState` of lane ``index`` (see
    :func:`~scarlet_jax.fit.finish_state`)."""
    data, placement, state = jax.tree.map(
        lambda ls: jax.lax.dynamic_index_in_dim(ls, index, 0, keepdims=False), lanes)
    return finish_state(data, placement, state)


start_state = jax.jit(init_state, static_argnames="config")


def prepare_solo(packed, state, params: FitParams, config: FitConfig) -> None:
    """Load or compile ahead the programs a one-lane :class:`LaneRun` of ``packed``'s
    bucket will ask :func:`~scarlet_jax.cache.compiled_program` for (the start of a fit when
    ``state`` is None, and the block program), e.g. in a thread while the host prepares
    blends and other buckets fit. Runs nothing."""
    if state is None:
        _start_program(packed, params, config)
        state = jax.eval_shape(functools.partial(init_state, config=config), packed.data,
                               packed.placement, packed.components, params)
    _block_program(packed.key, packed.data, packed.placement, state, params, config)


def _start_program(packed, params: FitParams, config: FitConfig):
    """The start of a fit for ``packed``'s shapes (:func:`start_state`), from the store;
    called with ``(data, placement, components, params)``."""
    return compiled_program(start_state, (packed.data, packed.placement,
                                          packed.components, params), dict(config=config))


def _block_program(key, data, placement, state, params: FitParams, config: FitConfig):
    """The one-lane block program (:func:`advance_one`) of bucket ``key``, from the store;
    called with ``(data, placement, state, params)``."""
    return compiled_program(advance_one, (data, placement, state, params),
                            dict(config=config), label=block_label(key, config))


class LaneRun:
    """Host bookkeeping of one bucket: its queue of jobs, which job holds each lane, and
    the device lanes.

    A job is any object with ``packed`` (a :class:`~scarlet_jax.components.PackedBlend`),
    ``state`` (None for a fresh blend, else a :class:`~scarlet_jax.fit.FitState` to go on
    from) and ``losses`` (a list; the loss of every iteration the job ran is appended).
    ``ahead`` blocks are kept in flight before flags are read (1: the host reads
    block t's flags while block t+1 runs).
    """

    def __init__(self, key, n_lanes: int, params: FitParams, config: FitConfig,
                 sharding=None, ahead: int = 1):
        self.key = key
        self.n_lanes = n_lanes
        self.params = params
        self.config = config
        self.sharding = sharding
        self.ahead = ahead
        self.queue: deque = deque()
        self.jobs: list = [None] * n_lanes
        self.filled_at = [0] * n_lanes  # block index from which a lane's flags are its job's
        # one lane on one device: the lane is the blend's own arrays (advance_one)
        self.solo = n_lanes == 1 and sharding is None
        self.block_program = None  # advance_one's executable for this bucket (solo only)
        self.lanes = None
        self.pending: deque = deque()  # (block index, (2, L) flags, FitInfo) on device
        self.blocks = 0

    @property
    def has_work(self) -> bool:
        return bool(self.queue) or any(j is not None for j in self.jobs)

    def _lane_of(self, job):
        packed = job.packed
        state = job.state
        if state is None:
            program = _start_program(packed, self.params, self.config)
            state = program(packed.data, packed.placement, packed.components, self.params)
        return (packed.data, packed.placement, state)

    def _start(self, one) -> None:
        """Lanes filled with copies of ``one``, every copy finished (a frozen lane)."""
        one = jax.device_get(one)
        data, placement, state = one
        state = state._replace(done=np.ones_like(state.done))
        tiled = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], self.n_lanes, axis=0),
                             (data, placement, state))
        self.lanes = jax.device_put(tiled, self.sharding) if self.sharding else \
            jax.device_put(tiled)

    def refill(self) -> int:
        """Write queued jobs into free lanes; returns how many were written."""
        n = 0
        for i in range(self.n_lanes):
            if not self.queue:
                break
            if self.jobs[i] is not None:
                continue
            job = self.queue.popleft()
            one = self._lane_of(job)
            if self.solo:
                self.lanes = one  # the blend's own arrays: no lane axis, nothing to write
            else:
                if self.lanes is None:
                    self._start(one)
                self.lanes = write_lane(self.lanes, np.int32(i), one)
            self.jobs[i] = job
            self.filled_at[i] = self.blocks
            n += 1
        return n

    def dispatch(self) -> None:
        """Run one block on every lane (asynchronously)."""
        data, placement, state = self.lanes
        if self.solo:
            if self.block_program is None:  # a bucket's arrays keep their shapes: look once
                self.block_program = _block_program(self.key, data, placement, state,
                                                    self.params, self.config)
            state, flags, info = self.block_program(data, placement, state, self.params)
        else:
            state, flags, info = advance(data, placement, state, self.params, self.config)
        self.lanes = (data, placement, state)
        self.pending.append((self.blocks, flags, info))
        self.blocks += 1

    def retire(self, final: bool = False) -> list:
        """Jobs whose lanes finished, read from flags at least ``ahead`` blocks old (all
        flags when ``final``): a list of ``(job, needs_room, state)`` with ``state`` the
        lane's final state on the device (not fetched)."""
        out = []
        while self.pending and (final or len(self.pending) > self.ahead):
            block, flags, info = jax.device_get(self.pending.popleft())
            if self.solo:  # (2,) flags and (block,) rows of the one lane
                flags, info = flags[:, None], jax.tree.map(lambda x: x[None], info)
            for i, job in enumerate(self.jobs):
                if job is None or block < self.filled_at[i]:
                    continue  # a free lane, or a block of the lane's previous job
                job.losses.extend(np.asarray(info.loss[i][info.ran[i]], np.float32).tolist())
                if flags[0, i]:
                    # one lane: advance_one already returned the final state
                    final_state = self.lanes[2] if self.solo else read_lane(self.lanes,
                                                                            np.int32(i))
                    out.append((job, bool(flags[1, i]), final_state))
                    self.jobs[i] = None
                    if self.solo:
                        self.lanes = None
        return out
