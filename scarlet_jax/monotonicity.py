"""scarlet lite's weighted monotonicity in JAX: the schedule tables and the scan engine.

The operator reproduces scarlet lite's ``operators.py:Monotonicity`` (with the C++
``new_monotonicity`` pass) to float32 rounding. It is not a Euclidean projection: it is
lite's one Gauss-Seidel pass towards the set of morphologies that decrease from the peak.

How it runs in JAX: lite visits the pixels one by one in order of distance from the peak
(Gauss-Seidel). A pixel only reads neighbours strictly closer to the peak (at most 4 of its
8), so the reads form a DAG, and pixels with no path between them can be updated at once. On
the host we build, per box shape, a schedule of steps (at most ``C`` pixels each, every pixel
after all pixels it reads: on CPU about 1.6x the longest chain, 98 steps for a 41x41 box,
few padding slots; elsewhere about 1.1x, 70 steps: see :data:`SLACK`) on a grid centred on
the peak. On the device the pixels are stored in schedule order, one row of K
components per pixel, so that step s reads its neighbours with one row gather and writes its
own C rows with one contiguous ``dynamic_update_slice``; a ``lax.scan`` runs the steps.
Components sit on the last, contiguous axis; ``jax.vmap`` of the returned functions is routed
to that layout through ``jax.custom_batching.custom_vmap``.

Caches: the schedule (:func:`_mono_tables`) and the any-peak operator of
:func:`monotonicity` are ``functools.lru_cache`` entries of pure functions of static shapes;
a cached value is exactly what a fresh call would build (nothing else is kept between calls).
"""

from __future__ import annotations

import functools
import heapq
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .prox import _as_float, _as_index, _check_image, find_peak

__all__ = ["make_monotonicity", "make_monotonicity_classes", "monotonicity",
           "monotonicity_weights"]


# --------------------------------------------------------------------------------------------
# host-side tables


def monotonicity_weights(dy, dx) -> np.ndarray:
    """scarlet lite's monotonicity weights for pixels at offsets (dy, dx) from the peak.

    Neighbour ``k = 3 i + j`` is the offset ``(i - 1, j - 1)``. With ``r`` the distance and
    ``theta = atan2(y, x)`` the polar angle about the peak, ``w_k = |cos(theta_p - theta_nk)|``
    where the neighbour is strictly closer (``r_p - r_nk > 0``) and 0 otherwise, normalised to
    sum to 1 over the 9 slots; the self slot (k = 4) is 1 at the peak and 0 elsewhere. Computed
    in float64 (lite's table dtype) on the host.

    Args:
      dy, dx: integer arrays of one shape S, offsets from the peak.

    Returns:
      (9, *S) float64 weights.
    """
    dy = np.asarray(dy, np.float64)
    dx = np.asarray(dx, np.float64)
    r = np.sqrt(dy**2 + dx**2)  # exact squares, correctly rounded: ties stay ties
    theta = np.arctan2(dy, dx)
    weights = np.zeros((9,) + dy.shape)
    for k in range(9):
        ny, nx = dy + (k // 3 - 1), dx + (k % 3 - 1)
        closer = r - np.sqrt(ny**2 + nx**2) > 0
        weights[k] = np.where(closer, np.abs(np.cos(theta - np.arctan2(ny, nx))), 0.0)
    norm = weights.sum(axis=0)
    weights = weights / np.where(norm > 0, norm, 1.0)
    weights[4] = np.where((dy == 0) & (dx == 0), 1.0, 0.0)
    return weights


#: most strictly-closer neighbours a pixel has among its 8: for |dx| > |dy| the steps in along
#: x, along y and diagonally, plus (dy + 1, dx - 1) when |dx| > |dy| + 1 (and symmetric cases)
_MAX_READS = 4


class _MonoTables(NamedTuple):
    """Static schedule for one box shape (host numpy; becomes jaxpr constants).

    The grid is (gh, gw) = (h + 2 my, w + 2 mx) with the peak at its centre, ``n = gh * gw``.
    On the device the pixels live in a *state* of R = 2 + S * C rows (one row per pixel, the
    components along the row): row 0 holds zeros (read for padding), row 1 the peak, and step
    s writes the contiguous rows ``2 + s C ... 2 + (s + 1) C``. Rows of unused slots hold a
    copy of the peak that nothing reads.
    """

    box_shape: tuple[int, int]
    margin: tuple[int, int]
    grid_shape: tuple[int, int]
    source: np.ndarray  # (R,) int32: 0 for the zero row, else 1 + grid pixel (flat)
    row_of: np.ndarray  # (n,) int32: state row of each grid pixel
    coords: np.ndarray  # (S, 2, C) int32: grid (y, x) of the pixels step s writes
    reads: np.ndarray  # (S, C, _MAX_READS) int32: state rows read (0 where unused)
    weights: np.ndarray  # (S, C, _MAX_READS) float64: their weights, in lite's order
    n_levels: int  # longest dependency chain (the minimum possible number of steps)


def _dependencies(gh: int, gw: int, gcy: int, gcx: int):
    """Weights and the in-grid neighbours each grid pixel reads (not itself)."""
    yy, xx = np.mgrid[:gh, :gw]
    weights = monotonicity_weights(yy - gcy, xx - gcx)  # (9, gh, gw)
    n = gh * gw
    flat = np.arange(n).reshape(gh, gw)
    deps = np.full((n, 9), -1, np.int64)
    for k in range(9):
        if k == 4:
            continue
        qy, qx = yy + k // 3 - 1, xx + k % 3 - 1
        inside = (qy >= 0) & (qy < gh) & (qx >= 0) & (qx < gw)
        ok = inside & (weights[k] > 0)
        deps[:, k] = np.where(ok, flat[np.clip(qy, 0, gh - 1), np.clip(qx, 0, gw - 1)], -1).ravel()
    return weights, deps


#: the schedule's step capacity ``C = ceil(slack * n / n_levels)`` per backend
#: (:func:`schedule_slack`). On XLA:CPU a step costs mostly per slot (padding slots too):
#: 0.7 (~1.6x the minimum number of steps, ~12% padding slots; 0.5-0.7 measured alike)
#: runs the HSC blend's monotonicity in ~0.8x the time of 1.2 (~1.1x the minimum number
#: of steps, ~35% padding), with the same results (any order of the steps gives them).
#: Elsewhere (an accelerator pays mostly per step) 1.2.
SLACK = {"cpu": 0.7}
DEFAULT_SLACK = 1.2


def schedule_slack() -> float:
    """The schedule's capacity factor for the default backend (:data:`SLACK`)."""
    return SLACK.get(jax.default_backend(), DEFAULT_SLACK)


def _schedule(deps: np.ndarray, r2: np.ndarray, root: int, slack: float = DEFAULT_SLACK,
              capacity: int | None = None):
    """Group pixels into steps of at most ``C`` mutually independent pixels.

    Every pixel comes after all the pixels it reads. Longest-remaining-chain-first list
    scheduling with ``C = ceil(slack * n / n_levels)`` (1.2: ~1.1x the minimum number of steps,
    a third less padding than one step per level; see :data:`SLACK`), or the ``capacity``
    given.

    Returns:
      (steps: list of int arrays, n_levels: int)
    """
    n = deps.shape[0]
    valid = deps >= 0
    # levels (longest chain from the root) and heights (longest chain to a leaf), by distance
    shells = np.unique(r2)
    order = np.argsort(r2, kind="stable")
    bounds = np.searchsorted(r2[order], shells, side="left")
    groups = np.split(order, bounds[1:])
    level = np.zeros(n, np.int64)
    for g in groups:
        d = deps[g]
        lv = np.where(valid[g], level[np.maximum(d, 0)] + 1, 0)
        level[g] = lv.max(axis=1)
    height = np.ones(n, np.int64)
    for g in reversed(groups):
        d, v = deps[g], valid[g]
        np.maximum.at(height, d[v], np.repeat(height[g], v.sum(axis=1)) + 1)
    n_levels = int(level.max())
    if capacity is None:
        capacity = max(1, int(np.ceil(slack * (n - 1) / max(n_levels, 1))))

    # children lists (CSR) and in-degrees
    parent = deps[valid]
    child = np.repeat(np.arange(n), valid.sum(axis=1))
    by_parent = np.argsort(parent, kind="stable")
    children = child[by_parent]
    starts = np.searchsorted(parent[by_parent], np.arange(n + 1))
    indeg = valid.sum(axis=1)

    ready: list[tuple[int, int]] = []

    def release(p):
        for q in children[starts[p] : starts[p + 1]]:
            indeg[q] -= 1
            if indeg[q] == 0:
                heapq.heappush(ready, (-int(height[q]), int(q)))

    release(root)
    done = 1
    steps = []
    while ready:
        chosen = [heapq.heappop(ready)[1] for _ in range(min(capacity, len(ready)))]
        steps.append(np.sort(np.asarray(chosen, np.int64)))
        done += len(chosen)
        for p in chosen:
            release(p)
    if done != n:  # pragma: no cover - the graph is a DAG by construction
        raise RuntimeError(f"monotonicity schedule covered {done} of {n} pixels")
    return steps, n_levels


@functools.lru_cache(maxsize=64)
def _mono_tables(
    box_shape: tuple[int, int], margin: tuple[int, int], slack: float = DEFAULT_SLACK,
    capacity: int | None = None,
) -> _MonoTables:
    """The static monotonicity schedule of one box shape (see :class:`_MonoTables`), with
    steps of ``capacity`` pixels when it is given (else from ``slack``).

    A pure function of its static arguments, cached with ``functools.lru_cache`` (64 shapes):
    the tables are read-only numpy arrays, so a cache hit returns what a rebuild would.
    """
    h, w = box_shape
    my, mx = margin
    gh, gw = h + 2 * my, w + 2 * mx
    gcy, gcx = h // 2 + my, w // 2 + mx
    root = gcy * gw + gcx
    weights, deps = _dependencies(gh, gw, gcy, gcx)
    yy, xx = np.mgrid[:gh, :gw]
    r2 = ((yy - gcy) ** 2 + (xx - gcx) ** 2).ravel()
    steps, n_levels = _schedule(deps, r2, root, slack, capacity)
    steps = steps or [np.zeros(0, np.int64)]  # a 1x1 grid: nothing to update
    n_steps, capacity = len(steps), max(1, max(len(s) for s in steps))
    pixel = np.full(2 + n_steps * capacity, root, np.int64)  # grid pixel of each state row
    row_of = np.empty(gh * gw, np.int64)  # and the state row of each grid pixel
    row_of[root] = 1
    for s, idx in enumerate(steps):
        rows = 2 + s * capacity + np.arange(len(idx))
        pixel[rows], row_of[idx] = idx, rows
    # in-grid neighbours with a nonzero weight, in lite's summation order k = 0..8 (a zero
    # weight or an off-grid neighbour, which reads 0, adds exactly 0 to lite's sum)
    reads = np.zeros((n_steps, capacity, _MAX_READS), np.int64)
    wts = np.zeros((n_steps, capacity, _MAX_READS))
    flat_weights = weights.reshape(9, -1)
    for s, idx in enumerate(steps):
        filled = np.zeros(len(idx), np.int64)
        for k in range(9):
            q = deps[idx, k]
            use = q >= 0
            if not use.any():
                continue
            if filled[use].max() >= _MAX_READS:  # pragma: no cover - geometry bounds it
                raise RuntimeError("a monotonicity pixel reads more than 4 neighbours")
            slot = np.nonzero(use)[0]
            reads[s, slot, filled[use]] = row_of[q[use]]
            wts[s, slot, filled[use]] = flat_weights[k, idx[use]]
            filled[use] += 1
    source = pixel + 1
    source[0] = 0
    coords = np.stack([pixel[2:] // gw, pixel[2:] % gw]).reshape(2, n_steps, capacity)
    tables = _MonoTables(
        box_shape,
        margin,
        (gh, gw),
        source.astype(np.int32),
        row_of.astype(np.int32),
        coords.transpose(1, 0, 2).astype(np.int32),
        reads.astype(np.int32),
        wts,
        n_levels,
    )
    for a in tables[3:-1]:
        a.setflags(write=False)
    return tables


def _tables_within(box_shape, margin, n_steps: int) -> _MonoTables:
    """The schedule of one box shape with the fewest pixels per step that still fits in
    ``n_steps`` steps (at least its longest chain)."""
    n = (box_shape[0] + 2 * margin[0]) * (box_shape[1] + 2 * margin[1])
    capacity = max(1, -(-(n - 1) // n_steps))
    while True:
        tables = _mono_tables(box_shape, margin, capacity=capacity)
        if tables.reads.shape[0] <= n_steps:
            return tables
        capacity += 1


# --------------------------------------------------------------------------------------------
# device code

_ROWS = lax.GatherDimensionNumbers(
    offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,)
)


def _take_rows(a, rows):
    """``a[rows]`` for a 2-D ``a`` and int32 ``rows`` (N,) known to be in bounds."""
    return lax.gather(a, rows[:, None], _ROWS, (1, a.shape[1]), mode="promise_in_bounds")


def _mono_batch(tables: _MonoTables, fit_radius: int, morphs, centers):
    """Monotonicity of a stack: morphs (K, h, w) float, centers (K, 2) int32.

    Returns (out (K, h, w), peaks (K, 2) int32); peaks are clipped to ``tables.margin`` from
    the box centre.
    """
    out, peaks = _mono_classes((tables,), fit_radius, (morphs,), (centers,))
    return out[0], peaks[0]


def _mono_classes(tables_list, fit_radius: int, morphs_list, centers_list):
    """Monotonicity of several stacks of different box shapes (size classes) in ONE scan.

    ``morphs_list[c]`` (K_c, h_c, w_c) with schedule ``tables_list[c]``. The scan runs the
    longest schedule; each step updates every class whose schedule has that step (a class
    with fewer steps redoes its last step with a padded table that reads the zero row and
    changes nothing). Returns (tuple of outs, tuple of peaks) as :func:`_mono_batch`.
    """
    n_total = max(t.reads.shape[0] for t in tables_list)
    states, consts, xs = [], [], []
    for tables, morphs, centers in zip(tables_list, morphs_list, centers_list, strict=True):
        k, h, w = morphs.shape
        dtype = morphs.dtype
        my, mx = tables.margin
        gh, gw = tables.grid_shape
        n_steps, capacity = tables.reads.shape[:2]
        peaks = jax.vmap(find_peak, in_axes=(0, 0, None))(morphs, centers, fit_radius)
        dy = jnp.clip(peaks[:, 0] - h // 2, -my, my)  # (K,)
        dx = jnp.clip(peaks[:, 1] - w // 2, -mx, mx)
        top, left = my - dy, mx - dx  # grid position of morph pixel (0, 0), (K,)

        # embed: grid_k[gy, gx] = morph_k[gy - top_k, gx - left_k], 0 off the morph; then the
        # state rows (components last, so each gathered row is K contiguous values)
        padded = jnp.pad(morphs, ((0, 0), (2 * my, 2 * my), (2 * mx, 2 * mx)))
        grid = jax.vmap(lambda m, y, x, gh=gh, gw=gw: lax.dynamic_slice(m, (y, x), (gh, gw)))(
            padded, 2 * my - top, 2 * mx - left
        )
        flat = jnp.concatenate([jnp.zeros((1, k), dtype), grid.reshape(k, gh * gw).T])
        states.append(_take_rows(flat, jnp.asarray(tables.source)))  # (R, K)
        # a class with fewer steps: its extra steps read the zero row with weight 0 at
        # coordinates far off every morph (so they write what was there)
        extra = n_total - n_steps
        reads = np.pad(tables.reads, ((0, extra), (0, 0), (0, 0)))
        weights = np.pad(tables.weights, ((0, extra), (0, 0), (0, 0)))
        coords = np.pad(tables.coords, ((0, extra), (0, 0), (0, 0)), constant_values=-(2**20))
        xs.append((jnp.asarray(reads), jnp.asarray(weights, dtype), jnp.asarray(coords)))
        consts.append((k, h, w, capacity, n_steps, top, left, dy, dx, tables))

    def step(states, table):
        s, per_class = table  # (), per class ((C, M), (C, M), (2, C))
        new_states = []
        for state, (reads, wts, coords), (k, h, w, capacity, n_steps, top, left, *_) in zip(
            states, per_class, consts, strict=True
        ):
            vals = _take_rows(state, reads.reshape(-1)).reshape(capacity, _MAX_READS, k)
            total = wts[:, 0, None] * vals[:, 0]  # lite's order
            for j in range(1, _MAX_READS):
                total = total + wts[:, j, None] * vals[:, j]
            # one index dtype under x64; past its schedule a class redoes its last step
            first = 2 + jnp.minimum(s, n_steps - 1) * capacity
            zero = jnp.zeros((), first.dtype)
            old = lax.dynamic_slice(state, (first, zero), (capacity, k))
            # grid pixels off the morph read as 0 and stay 0 (lite zero-pads the image by 1)
            y = coords[0][:, None] - top[None, :]
            x = coords[1][:, None] - left[None, :]
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            new = jnp.where(inside, jnp.minimum(old, total), old)
            new_states.append(lax.dynamic_update_slice(state, new, (first, zero)))
        return tuple(new_states), None

    steps = jnp.arange(n_total, dtype=jnp.int32)
    states, _ = lax.scan(step, tuple(states), (steps, tuple(xs)))

    outs, peaks_out = [], []
    for state, (k, h, w, *_, top, left, dy, dx, tables) in zip(states, consts, strict=True):
        gh, gw = tables.grid_shape
        # extract: out_k[y, x] = grid_k[y + top_k, x + left_k]
        grid = _take_rows(state, jnp.asarray(tables.row_of)).T.reshape(k, gh, gw)
        outs.append(jax.vmap(lambda g, y, x, h=h, w=w: lax.dynamic_slice(g, (y, x), (h, w)))(
            grid, top, left))
        peaks_out.append(jnp.stack([dy + h // 2, dx + w // 2], axis=-1))
    return tuple(outs), tuple(peaks_out)


def make_monotonicity_classes(box_shapes, fit_radius: int = 1):
    """:func:`make_monotonicity` (peaks near the box centre, ``return_peak``) for several
    stacks of morphs of different box shapes (size classes) at once: one scan for all of
    them, as long as the longest schedule (one scan per shape would pay the per-step cost,
    and compile a loop, once per shape).

    Args:
      box_shapes: static sequence of (h_c, w_c), one per stack.
      fit_radius: static window half-size for re-finding the peak.

    Returns:
      ``mono(morphs, centers) -> (outs, peaks)``: ``morphs`` a tuple of (K_c, h_c, w_c),
      ``centers`` a tuple of (K_c, 2) int32; outputs are tuples of (K_c, h_c, w_c) and
      (K_c, 2) int32. ``jax.vmap`` of it flattens the mapped axis into the stacks.
    """
    box_shapes = tuple(tuple(int(v) for v in shape) for shape in box_shapes)
    if fit_radius < 0:
        raise ValueError(f"fit_radius must be >= 0, got {fit_radius=}")
    margins = [(min(fit_radius, h // 2), min(fit_radius, w // 2)) for h, w in box_shapes]
    tables = [_mono_tables(shape, m, schedule_slack())
              for shape, m in zip(box_shapes, margins, strict=True)]
    # the scan runs the longest schedule: a shorter one is spread over as many steps with
    # fewer pixels each (its padding steps would cost as much as real ones)
    n_total = max(t.reads.shape[0] for t in tables)
    tables = tuple(_tables_within(shape, m, n_total) if t.reads.shape[0] < n_total else t
                   for shape, m, t in zip(box_shapes, margins, tables, strict=True))

    @jax.custom_batching.custom_vmap
    def mono(morphs, centers):
        return _mono_classes(tables, fit_radius, tuple(morphs), tuple(centers))

    @mono.def_vmap
    def _rule(axis_size, in_batched, morphs, centers):
        def flat(x, batched):
            x = x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)
            return x.reshape((-1,) + x.shape[2:])

        ks = [m.shape[-3] for m in morphs]
        outs, peaks = mono(tuple(flat(m, b) for m, b in zip(morphs, in_batched[0], strict=True)),
                           tuple(flat(c, b) for c, b in zip(centers, in_batched[1], strict=True)))
        outs = tuple(o.reshape((axis_size, k) + o.shape[1:]) for o, k in zip(outs, ks, strict=True))
        peaks = tuple(p.reshape((axis_size, k, 2)) for p, k in zip(peaks, ks, strict=True))
        return (outs, peaks), (tuple(True for _ in ks), tuple(True for _ in ks))

    return mono


def make_monotonicity(
    box_shape: tuple[int, int],
    fit_radius: int = 1,
    max_offset: int | tuple[int, int] | None = None,
    return_peak: bool = False,
):
    """Build scarlet lite's weighted monotonicity for morphs of one box shape.

    The returned ``mono(morph, center)`` re-finds the peak (:func:`find_peak` with
    ``fit_radius``) and then makes every pixel ``p``, in order of increasing distance from the
    peak, ``min(x_p, sum_k w_k x_{p + k})`` over its 8 neighbours with the weights of
    :func:`monotonicity_weights` (only strictly closer neighbours count; neighbours off the
    morph read as 0; closer pixels hold their updated values). This is the projection scarlet
    lite applies first in ``prox_morph``.

    The schedule is built once on the host for a grid that covers peaks up to ``max_offset``
    pixels from the box centre ``(h // 2, w // 2)``; a re-found peak farther away is clipped
    to that range (the result is then monotonic about the clipped peak, not lite's, and the
    clipped peak is the one returned). In the fit the centre is the box centre, so the default
    ``max_offset = fit_radius`` is exact. ``jax.vmap(mono)`` (any nesting) runs one batched
    scan with the components on the last, contiguous axis. ``mono`` supports forward-mode
    autodiff (``jax.jvp``) but not reverse mode: the fit never differentiates a prox.

    Args:
      box_shape: static (h, w) of the morphs.
      fit_radius: static window half-size for re-finding the peak (lite default 1).
      max_offset: static largest |peak - box centre| per axis (int or (y, x)); default
        ``fit_radius``; clipped to the box, so ``max(h, w)`` covers every peak.
      return_peak: if True, ``mono`` returns ``(out, peak)``.

    Returns:
      ``mono(morph (h, w) float, center (2,) int) -> (h, w)`` (same dtype), or
      ``-> ((h, w), (2,) int32 peak)`` with ``return_peak``.

    Raises:
      ValueError: for a box shape that is not two positive ints, or a negative radius/offset.
    """
    box_shape = tuple(int(s) for s in box_shape)
    if len(box_shape) != 2 or min(box_shape) < 1:
        raise ValueError(f"box_shape must be two positive ints, got {box_shape=}")
    if fit_radius < 0:
        raise ValueError(f"fit_radius must be >= 0, got {fit_radius=}")
    if max_offset is None:
        max_offset = fit_radius
    if isinstance(max_offset, int | np.integer):
        max_offset = (int(max_offset), int(max_offset))
    max_offset = tuple(int(m) for m in max_offset)
    if len(max_offset) != 2 or min(max_offset) < 0:
        raise ValueError(f"max_offset must be >= 0 (one int or (y, x)), got {max_offset=}")
    h, w = box_shape
    # peaks lie in the box: offsets from the centre are at most h // 2 (w // 2)
    max_offset = (min(max_offset[0], h // 2), min(max_offset[1], w // 2))
    tables = _mono_tables(box_shape, max_offset, schedule_slack())
    core = functools.partial(_mono_batch, tables, fit_radius)

    def check(morph):
        if morph.shape != box_shape:
            raise ValueError(f"morph shape {morph.shape} does not match {box_shape=}")

    @jax.custom_batching.custom_vmap
    def batched(morphs, centers):
        return core(morphs, centers)

    @batched.def_vmap
    def _batched_rule(axis_size, in_batched, morphs, centers):
        # flatten an outer vmap into the component axis: one scan for all
        m_b, c_b = in_batched
        k = morphs.shape[-3]
        if not m_b:
            morphs = jnp.broadcast_to(morphs, (axis_size,) + morphs.shape)
        if not c_b:
            centers = jnp.broadcast_to(centers, (axis_size,) + centers.shape)
        out, peaks = batched(morphs.reshape((-1, h, w)), centers.reshape((-1, 2)))
        return (out.reshape((axis_size, k, h, w)), peaks.reshape((axis_size, k, 2))), (True, True)

    @jax.custom_batching.custom_vmap
    def single(morph, center):
        out, peak = batched(morph[None], center[None])
        return out[0], peak[0]

    @single.def_vmap
    def _single_rule(axis_size, in_batched, morph, center):
        m_b, c_b = in_batched
        if not m_b:
            morph = jnp.broadcast_to(morph, (axis_size,) + morph.shape)
        if not c_b:
            center = jnp.broadcast_to(center, (axis_size,) + center.shape)
        return batched(morph, center), (True, True)

    @jax.jit
    def mono(morph, center):
        morph = _as_float(morph)
        check(morph)
        out, peak = single(morph, _as_index(center))
        return (out, peak) if return_peak else out

    return mono


@functools.lru_cache(maxsize=64)
def _general_monotonicity(shape: tuple[int, int], fit_radius: int):
    """The any-peak operator of one shape (pure in its static arguments; cached)."""
    return make_monotonicity(shape, fit_radius, max_offset=max(shape), return_peak=True)


def monotonicity(image, center, fit_radius: int = 1, return_peak: bool = False):
    """scarlet lite's weighted monotonicity about the peak near ``center``, for any peak.

    Same operator as :func:`make_monotonicity`, with a schedule (cached per shape on the host)
    that covers a peak anywhere in the image (a grid twice the image size), so it costs 2-4x
    the box-centred version.
    In a fit use :func:`make_monotonicity`.

    Args:
      image: (h, w) float.
      center: (2,) int or float (y, x), may be traced; the peak is re-found within
        ``fit_radius``.
      fit_radius: static window half-size for :func:`find_peak`.
      return_peak: if True, also return the re-found peak.

    Returns:
      (h, w) array of the image dtype, or ``((h, w), (2,) int32 peak)``.
    """
    image = _as_float(image)
    _check_image(image)
    out, peak = _general_monotonicity(image.shape, int(fit_radius))(image, center)
    return (out, peak) if return_peak else out
