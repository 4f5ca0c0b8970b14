"""The batch engine: many blends per jitted call.

Blends are packed on the host (:mod:`scarlet_jax.packing`) into shape buckets; each bucket
is stacked along a leading blend axis ``N`` (padded to a power of two and to a multiple of
the device count, with copies of a real blend), sharded over all local devices and fitted
by one ``vmap``-ped, jitted program. A converged blend is frozen while the others go on.
Large buckets are streamed in chunks: the next chunk is dispatched (host-to-device copy
and compute are asynchronous) before the current one's results are fetched.
"""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .deblend import prepare_blend, run_fit, unpack_result
from .errors import BadInputError
from .fit import FitConfig, FitParams, fit_unjitted
from .observation import Observation
from .options import resolve_options
from .packing import BucketKey, PackedBlend, bucket_key, pack_blend
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


def _padded_size(n: int, n_devices: int) -> int:
    """Blend-axis size for ``n`` blends: the next power of two (at least 2), rounded up to a
    multiple of the device count (a small menu of compiled batch sizes).

    Never 1: XLA compiles a blend axis of size 1 into a different program whose rounding
    differs from both the single-blend fit and larger batches; from 2 on, every blend's
    result is bit-identical to :func:`~scarlet_jax.deblend` on it alone.
    """
    size = 1 << max(n - 1, 1).bit_length()
    return -(-size // n_devices) * n_devices


def _sharding(n_devices: int):
    mesh = Mesh(np.array(jax.local_devices()[:n_devices]), ("blend",))
    return NamedSharding(mesh, PartitionSpec("blend"))


def _as_pair(item):
    if isinstance(item, Observation):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise BadInputError(
        f"batch items must be Observation or (observation, centers) pairs, got "
        f"{type(item).__name__}"
    )


def _failed_result(observation, error: str, opts) -> DeblendResult:
    b = observation.n_bands if isinstance(observation, Observation) else 0
    observation = observation if isinstance(observation, Observation) else None
    return DeblendResult(
        observation=observation,
        centers=np.zeros((0, 2), np.float32),
        spectra=np.zeros((0, b), np.float32),
        morphs=np.zeros((0, 1, 1), np.float32),
        origins=np.zeros((0, 2), np.int32),
        support=np.zeros((0, 1, 1), bool),
        peaks=np.zeros((0, 2), np.int32),
        component_source=np.zeros((0,), np.int32),
        loss=np.zeros((0,), np.float32),
        n_iter=0,
        converged=False,
        diverged=False,
        options=dict(opts.values),
        error=error,
    )


def deblend_batch(
    items,
    *,
    chunk_size: int = 256,
    devices: int | None = None,
    progress: bool = False,
    **options,
) -> list[DeblendResult]:
    """Deblend many blends, one jitted ``vmap`` per shape bucket.

    Args:
      items: a sequence of ``(observation, centers)`` pairs, or observations (sources are
        then detected).
      chunk_size: most blends per device call (larger buckets are streamed in chunks).
      devices: number of local devices to shard over (default all).
      progress: show a ``tqdm`` progress bar over blends (if tqdm is installed).
      **options: as for :func:`~scarlet_jax.deblend` (shared by every blend).

    Returns:
      One :class:`DeblendResult` per item, in input order. A blend that cannot be fitted
      (bad input) gets ``status == "failed"`` and its ``error``; a blend whose fit diverges
      is flagged ``diverged``; neither affects the other blends.
    """
    opts = resolve_options(**options)
    if chunk_size < 1:
        raise BadInputError(f"chunk_size must be >= 1, got {chunk_size}")
    n_dev = len(jax.local_devices()) if devices is None else int(devices)
    if not 1 <= n_dev <= len(jax.local_devices()):
        raise BadInputError(f"devices={devices}: {len(jax.local_devices())} local device(s)")
    items = list(items)
    results: list[DeblendResult | None] = [None] * len(items)
    prepared = []
    for i, item in enumerate(items):
        obs = item
        try:
            obs, centers = _as_pair(item)
            comps, centers = prepare_blend(obs, centers, opts)
            key = bucket_key(obs, comps, grow_margin=opts["grow_margin"])
        except (BadInputError, ValueError) as err:
            warnings.warn(f"blend {i} skipped: {err}", stacklevel=2)
            results[i] = _failed_result(obs, str(err), opts)
            continue
        prepared.append(_Member(i, obs, centers, comps, key))
    buckets = _merge_buckets(prepared, opts)

    bar = _progress(len(items), progress)
    bar.update(sum(r is not None for r in results))
    sharding = _sharding(n_dev)
    for members in buckets.values():
        chunks = [members[s : s + chunk_size] for s in range(0, len(members), chunk_size)]
        pending = None
        for chunk in chunks + [None]:
            launched = _launch(chunk, opts, sharding, n_dev) if chunk is not None else None
            if pending is not None:  # fetch the previous chunk while this one runs
                _collect(*pending, opts, results)
                bar.update(len(pending[0]))
            pending = launched
    bar.close()
    return results


class _Member(NamedTuple):
    """One blend of a batch on the host: its input index, data and initial components,
    and its bucket ``key`` (natural, then merged) or its ``packed`` arrays."""

    index: int
    observation: Observation
    centers: np.ndarray
    components: list
    key: BucketKey | None = None
    packed: PackedBlend | None = None


def _merge_buckets(prepared: list[_Member], opts) -> dict:
    """Group blends by image bucket (bands, canvas, FFT grid); inside a group every blend
    gets the group's largest slot box and slot count, so a group is one program. The extra
    room changes nothing in a fit (supports stay as they were; empty slots stay empty)."""
    groups = defaultdict(list)
    for m in prepared:
        groups[(m.key.n_bands, m.key.canvas, m.key.fft_shape)].append(m)
    buckets = {}
    for group in groups.values():
        box = max(m.key.box for m in group)
        slots = max(m.key.slots for m in group)
        members = [
            m._replace(packed=pack_blend(m.observation, m.components, box=box, slots=slots,
                                         canvas=m.key.canvas, grow_margin=opts["grow_margin"]))
            for m in group
        ]
        buckets[members[0].packed.key] = members
    return buckets


def _launch(chunk, opts, sharding, n_dev):
    n = len(chunk)
    size = _padded_size(n, n_dev)
    packs = [m.packed for m in chunk] + [chunk[-1].packed] * (size - n)
    data = stack_trees([p.data for p in packs])
    placement = stack_trees([p.placement for p in packs])
    comps = stack_trees([p.components for p in packs])
    data, placement, comps = jax.device_put((data, placement, comps), sharding)
    state = fit_batch(data, placement, comps, opts.params, opts.config)
    return chunk, state


def _collect(chunk, state, opts, results):
    state = jax.device_get(state)
    for j, m in enumerate(chunk):
        one = jax.tree.map(lambda x, j=j: x[j], state)
        packed = m.packed
        if bool(one.needs_room):  # a box outgrew its slot: go on alone in a larger one
            packed, one = run_fit(m.observation, m.components, opts, packed, one)
        results[m.index] = unpack_result(packed, one, m.observation, m.centers, opts)


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
