"""The batch entry point, ``deblend_batch``, on top of :mod:`scarlet_jax.pipeline`.

Blends are planned into shape buckets (:mod:`scarlet_jax.plan`); each bucket runs its
blends in a fixed number of lanes, refilled as blends finish (:mod:`scarlet_jax.scheduler`),
sharded over the local devices. ``fit_batch`` (a ``vmap`` of the whole fit over a stack of
blends of one bucket) stays for fixed-size throughput benchmarks.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp

from .errors import BadInputError
from .fit import FitConfig, FitParams, fit_unjitted
from .options import resolve_options
from .pipeline import run
from .plan import MERGE_RATIO
from .result import DeblendResult

__all__ = ["deblend_batch", "fit_batch", "stack_trees"]


@functools.partial(jax.jit, static_argnames="config")
def fit_batch(data, placement, components, params: FitParams, config: FitConfig):
    """``vmap`` of :func:`~scarlet_jax.fit.fit_unjitted` over a leading blend axis; the
    params and config are shared."""
    return jax.vmap(lambda d, p, c: fit_unjitted(d, p, c, params, config))(
        data, placement, components
    )


def stack_trees(trees):
    """Stack a list of same-structure pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def deblend_batch(
    items,
    *,
    devices: int | None = None,
    max_lanes: int | None = None,
    merge_ratio: float = MERGE_RATIO,
    memory_limit=None,
    progress: bool = False,
    streams: int | None = None,
    chunk_size: int | None = None,
    **options,
) -> list[DeblendResult]:
    """Deblend many blends: one compiled program per bucket of the plan
    (:func:`~scarlet_jax.plan`), each running its blends in lanes (the lane scheduler).

    Args:
      items: a sequence of ``(observation, centers)`` pairs, or observations (sources are
        then detected).
      devices: number of local devices to shard the lanes over (default all).
      max_lanes: most lanes of a bucket (default 1 on a CPU, where a vmapped lane costs
        more than a lone blend; 256 on an accelerator).
      merge_ratio: merge a blend into a larger bucket only when that bucket's pixel work
        per iteration is at most this times its own (:mod:`scarlet_jax.plan`).
      memory_limit: device bytes a lane may use (see :func:`scarlet_jax.memory.memory_limit`).
      progress: show a ``tqdm`` progress bar over blends (if tqdm is installed).
      streams: threads dispatching block programs (default: one per CPU core the process
        may use with one-lane buckets on a CPU, else 1). Set 1 where each process should
        keep to one core (e.g. a Dask worker per core).
      chunk_size: deprecated and ignored (lanes replace chunks); kept for old callers.
      **options: as for :func:`~scarlet_jax.deblend` (shared by every blend).

    Returns:
      One :class:`DeblendResult` per item, in input order, equal to
      :func:`~scarlet_jax.deblend` of the item. A blend that cannot be fitted (bad input)
      gets ``status == "failed"`` and its ``error``; a blend whose fit diverges is flagged
      ``diverged``; neither affects the other blends.
    """
    opts = resolve_options(**options)
    if chunk_size is not None:
        warnings.warn("deblend_batch(chunk_size=) is deprecated and ignored: lanes replaced "
                      "chunks; use max_lanes=", DeprecationWarning, stacklevel=2)
    n_dev = len(jax.local_devices()) if devices is None else int(devices)
    if not 1 <= n_dev <= len(jax.local_devices()):
        raise BadInputError(f"devices={devices}: {len(jax.local_devices())} local device(s)")
    if max_lanes is not None and int(max_lanes) < 1:
        raise BadInputError(f"max_lanes must be >= 1, got {max_lanes}")
    items = list(items)
    bar = _progress(len(items), progress)
    try:
        return run(items, opts, max_lanes=max_lanes, devices=n_dev, merge_ratio=merge_ratio,
                   memory_limit_bytes=memory_limit, streams=streams, progress=bar)
    finally:
        bar.close()


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="blend")
