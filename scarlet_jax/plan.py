"""Cost-aware bucketing: which compiled program (bucket) each blend of a batch runs in.

Each blend has a *natural* bucket (:func:`~scarlet_jax.packing.bucket_key`: bands, canvas,
FFT grid, slot box, slot count). Blends of one image group (same bands, canvas and FFT
grid) may share a larger bucket, which saves a compile but costs padding. The rule:

    a blend joins an existing bucket of its image group that holds it (box and slots at
    least its own) when the bucket's pixel work per iteration is at most ``merge_ratio``
    (default 1.25) times the blend's natural pixel work per iteration;
    otherwise it opens a bucket of its own.

Pixel work per iteration of a bucket is ``n_bands * (Fh * Fw + slots * box**2)``: the
FFT grid (convolution and its transpose) plus the component boxes (insertion, extraction,
the einsums and the proximal operators all scale with box pixels). Iterations need no
estimate: with the lane scheduler a blend runs its own number of iterations whatever its
bucket, so the work of a blend in a bucket is its iterations times the bucket's pixel
work, and the rule bounds the merged pixel-iterations by ``merge_ratio`` times the sum of
the separate ones, blend by blend.

Compiling a program also costs time (seconds per block program, far more than a blend's
fit on a CPU), so a second rule trades padding against compiles:

    a blend that the first rule leaves alone joins the cheapest bucket of its image group
    that holds it when the padding costs less than compiling its own bucket's program:
    the blends of one natural bucket folded this way add in all at most

        sum (pixel_work(bucket) - pixel_work(natural)) * iterations * pixel_seconds
            <= compile_seconds

    where ``iterations`` is the expected iterations of a blend (:data:`EXPECTED_ITERATIONS`,
    at most ``max_iter``), ``pixel_seconds`` the time of one pixel-iteration and
    ``compile_seconds`` the time to trace, lower and compile a block program on the backend
    (:data:`COST_ESTIMATES`). Once its folded padding would pass ``compile_seconds``, the
    natural bucket opens, and its later blends run there.

Blends are assigned in input order (the first blend of a kind opens its bucket), so a
plan is deterministic; a bucket's lanes are ``min(max_lanes, next power of two >= its
blends)``, rounded to a multiple of the device count and capped by memory.

Blend by blend, a small bucket opened early cannot fold into a larger one opened later,
and two kinds neither of which holds the other each open a bucket. So
:meth:`Planner.assign_window` plans a window of blends at once (the pipeline initialises
up to :data:`WINDOW` blends, then plans them together): after the merge rule, the blends left
start as one cluster per natural bucket, and the cheapest of these merges is made, again
and again, while it lowers the window's estimated cost (compiles + padding, the terms of
the compile trade):

    - a cluster joins an existing bucket that holds it:
      ``padding(bucket) - padding(own) - compile(own)``;
    - two clusters of one image group become one bucket holding both (the smallest of
      :func:`~scarlet_jax.buckets.merge_classes` in either order, or the larger when one
      holds the other): ``compile(merged) + padding(merged) - both compiles and paddings``;

where ``padding`` sums ``(pixel_work(bucket) - pixel_work(natural)) * iterations *
pixel_seconds`` over the cluster's blends and ``compile`` is ``compile_seconds``. A merge is
never made when a blend's pixel work in the merged bucket would pass :data:`MAX_PADDING`
times its own (the bound on any blend's padding), nor when the merged layout has more than
:data:`MAX_MERGED_CLASSES` size classes.

Stored programs (the executable store of :mod:`scarlet_jax.cache`; ``stored`` of
:class:`Planner`, a snapshot of the store taken when the run starts). A blend that no existing
bucket takes by the merge rule runs in the smallest stored bucket of its image that holds it
with pixel work at most :data:`MAX_PADDING` times its own, before any compile trade or
window merge; only the blends left are planned by the rules above, which never look at the
store. So a process whose store holds the buckets of an earlier plan of the same blends
compiles no block program: each blend has its earlier bucket (stored, within the bound)
to go to, and the merges that would make unstored layouts see no blend left. (A planner
that priced stored programs at 0 compile seconds inside the merges planned the windows
differently once everything was stored, and opened buckets nobody had stored.) A blend
placed by these first steps (an existing bucket or a stored one) has its bucket the moment
it is initialised (:meth:`Planner.hold`), so the pipeline hands it to the device before its
window is planned; the window then plans the others, as if it had planned them all.

A blend whose components outgrow their classes during the fit gets a new layout
(:func:`~scarlet_jax.packing.regrow`); it runs in the smallest bucket of its image that
holds that layout with pixel work at most :data:`MAX_PADDING` times the layout's own
(:meth:`Planner.regrown`), else in such a stored bucket, else its layout opens a bucket that
later regrown blends may join.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Collection

from .buckets import classes_hold, merge_classes
from .components import BucketKey
from .memory import format_bytes, lane_bytes

__all__ = ["MERGE_RATIO", "MAX_PADDING", "MAX_MERGED_CLASSES", "WINDOW", "COST_ESTIMATES",
           "EXPECTED_ITERATIONS", "CompileCost", "pixel_work", "Planner", "PlannedBucket",
           "Plan", "lanes_for"]

#: Default bound on a merged bucket's pixel work relative to a blend's own bucket.
MERGE_RATIO = 1.25

#: Bound of the window rule: a blend's pixel work in its bucket is at most this many times
#: its own (the FFT grid is shared, so this bounds the box work padding far more tightly).
MAX_PADDING = 2.0

#: Most size classes of a layout made by merging two (each class is its own code in the
#: block program: compile time grows with the classes).
MAX_MERGED_CLASSES = 3

#: Blends the pipeline initialises before planning them together.
WINDOW = 64

#: Iterations a blend is expected to run, for the compile trade (mixed survey-like set:
#: median 16, most under 60).
EXPECTED_ITERATIONS = 30


@dataclasses.dataclass(frozen=True)
class CompileCost:
    """The compile trade's estimates for one backend.

    Attributes:
      compile_seconds: seconds to trace, lower and compile one block program.
      pixel_seconds: seconds per pixel-iteration (:func:`pixel_work` x iterations).
      iterations: expected iterations of a blend.
    """

    compile_seconds: float
    pixel_seconds: float
    iterations: int = EXPECTED_ITERATIONS

    def padding_seconds(self, bucket: BucketKey, natural: BucketKey) -> float:
        return (pixel_work(bucket) - pixel_work(natural)) * self.iterations * self.pixel_seconds


#: Per-backend estimates. CPU (2 cores, idle): a block program traces, lowers and compiles
#: in 4-8 s; a 64x64, 5-band, 8-slot blend runs 3 ms per iteration at 1.1e5 pixel work
#: (2.7e-8 s per pixel-iteration). Accelerators: compiles of 10-20 s, and ~1e-11 s per
#: pixel-iteration with hundreds of lanes, so there a small bucket nearly always folds.
COST_ESTIMATES = {
    "cpu": CompileCost(compile_seconds=6.0, pixel_seconds=2.7e-8),
    "gpu": CompileCost(compile_seconds=10.0, pixel_seconds=1e-11),
    "tpu": CompileCost(compile_seconds=20.0, pixel_seconds=1e-11),
}


def pixel_work(key: BucketKey) -> int:
    """Pixels touched per iteration in bucket ``key`` (the cost unit of the plan)."""
    fh, fw = key.fft_shape
    return key.n_bands * (fh * fw + key.pixels)


def _holds(big: BucketKey, small: BucketKey) -> bool:
    """Whether every component slot of ``small`` has a slot at least as large in ``big``
    (same bands, canvas and FFT grid)."""
    return (big.n_bands, big.canvas, big.fft_shape) == (small.n_bands, small.canvas,
                                                        small.fft_shape) and (
        classes_hold(big.classes, small.classes))


def lanes_for(n_blends: int, max_lanes: int, n_devices: int = 1, cap: int | None = None,
              min_lanes: int = 1) -> int:
    """Lanes of a bucket of ``n_blends``: the next power of two, at most ``max_lanes`` (and
    ``cap``, the lanes memory allows), a multiple of ``n_devices``."""
    lanes = 1 << max(n_blends - 1, 0).bit_length()
    lanes = max(min(lanes, max_lanes), min_lanes)
    if cap is not None:
        lanes = max(min(lanes, cap), 1)
    return -(-lanes // n_devices) * n_devices


class Planner:
    """Assigns natural bucket keys to buckets by the two rules (thread-safe, in order).

    Args:
      merge_ratio: the merge rule's bound on pixel work.
      cost: the compile trade's estimates; None: no compile trade (only the merge rule).
      stored: bucket keys whose block program needs no compile (in the executable store):
        a blend the merge rule leaves runs in the smallest of them that holds it within
        ``max_padding`` (module docstring).
      max_padding: the window rule's bound on a blend's pixel work in its bucket, over its
        own (:meth:`assign_window`).
    """

    def __init__(self, merge_ratio: float = MERGE_RATIO, cost: CompileCost | None = None,
                 stored: Collection[BucketKey] = (), max_padding: float = MAX_PADDING):
        if not merge_ratio >= 1:
            raise ValueError(f"merge_ratio must be >= 1, got {merge_ratio}")
        if not max_padding >= merge_ratio:
            raise ValueError(f"max_padding must be >= merge_ratio, got {max_padding}")
        self.merge_ratio = float(merge_ratio)
        self.max_padding = float(max_padding)
        self.cost = cost
        self.stored = frozenset(stored)
        self._stored_order = sorted(self.stored)  # a fixed order for the smallest-holder ties
        self.buckets: list[BucketKey] = []
        self.members: dict[BucketKey, list[BucketKey]] = {}
        self.folded: dict[BucketKey, float] = {}  # natural -> padding seconds folded so far
        self.folds = 0  # blends placed by the compile trade
        self._lock = threading.Lock()

    def _smallest_holder(self, key: BucketKey, ratio: float,
                         among=None) -> BucketKey | None:
        """The smallest bucket of ``among`` (default: the existing buckets) that holds
        ``key`` with pixel work at most ``ratio`` times ``key``'s, or None."""
        fits = [k for k in (self.buckets if among is None else among)
                if _holds(k, key) and pixel_work(k) <= ratio * pixel_work(key)]
        return min(fits, key=pixel_work) if fits else None

    def _held(self, natural: BucketKey) -> BucketKey | None:
        """The bucket a blend goes to before any compile trade: an existing one by the merge
        rule, else the smallest stored one within ``max_padding``; None: neither."""
        key = self._smallest_holder(natural, self.merge_ratio)
        if key is None and natural in self.stored:
            key = natural
        if key is None:
            key = self._smallest_holder(natural, self.max_padding, self._stored_order)
        return key

    def _fold(self, natural: BucketKey) -> BucketKey | None:
        """The bucket the compile trade puts ``natural`` in, or None (open its own)."""
        if self.cost is None or natural in self.members:
            return None
        holders = [k for k in self.buckets if _holds(k, natural)]
        if not holders:
            return None
        bucket = min(holders, key=pixel_work)
        spent = self.folded.get(natural, 0.0) + self.cost.padding_seconds(bucket, natural)
        if spent > self.cost.compile_seconds:
            return None
        self.folded[natural] = spent
        return bucket

    def _add(self, key: BucketKey, natural: BucketKey) -> None:
        """Record a blend of natural bucket ``natural`` in bucket ``key`` (opened if new)."""
        if key not in self.members:
            self.buckets.append(key)
            self.members[key] = []
        if pixel_work(key) > self.merge_ratio * pixel_work(natural):
            self.folds += 1
        self.members[key].append(natural)

    def hold(self, natural: BucketKey) -> BucketKey | None:
        """The bucket a blend of natural bucket ``natural`` goes to before any compile trade
        or window merge (an existing bucket by the merge rule, else a stored one), or None:
        the window decides. Records nothing; :meth:`assign_window` takes the answer as
        ``held`` so that a blend can be released before its window is planned."""
        with self._lock:
            return self._held(natural)

    def assign(self, natural: BucketKey) -> BucketKey:
        """The bucket a blend of natural bucket ``natural`` runs in (opening it if new)."""
        with self._lock:
            key = self._held(natural)
            if key is None:
                key = self._fold(natural)
            if key is None:
                key = natural
            self._add(key, natural)
            return key

    def regrown(self, key: BucketKey) -> BucketKey:
        """The bucket a blend moved to the new layout ``key`` during its fit runs in: the
        smallest bucket of its image that holds ``key`` with pixel work at most
        ``max_padding`` times ``key``'s (no new program), else such a stored bucket (no
        compile), else ``key``, which opens a bucket (later regrown blends may join it).
        Without a compile trade: ``key``."""
        if self.cost is None:
            return key
        with self._lock:
            holder = self._smallest_holder(key, self.max_padding)
            if holder is None and key not in self.stored:
                holder = self._smallest_holder(key, self.max_padding, self._stored_order)
            if holder is not None:
                key = holder
            if key not in self.members:
                self.buckets.append(key)
                self.members[key] = []
            return key

    # ------------------------------------------------------------------ window rule

    def _padding(self, key: BucketKey, naturals) -> float:
        return sum(self.cost.padding_seconds(key, n) for n in naturals)

    def _bounded(self, key: BucketKey, naturals) -> bool:
        return all(pixel_work(key) <= self.max_padding * pixel_work(n) for n in naturals)

    def _merged(self, a: BucketKey, b: BucketKey) -> BucketKey | None:
        """The cheapest layout of a's image that holds both a and b (None: none allowed)."""
        if (a.n_bands, a.canvas, a.fft_shape) != (b.n_bands, b.canvas, b.fft_shape):
            return None
        if classes_hold(a.classes, b.classes):
            return a
        if classes_hold(b.classes, a.classes):
            return b
        keys = [a._replace(classes=merge_classes(pair)) for pair in ((a.classes, b.classes),
                                                                      (b.classes, a.classes))]
        keys = [k for k in keys if len(k.classes) <= MAX_MERGED_CLASSES]
        return min(keys, key=pixel_work) if keys else None

    def assign_window(self, naturals: list[BucketKey],
                      held: list[BucketKey | None] | None = None) -> list[BucketKey]:
        """The buckets of a window of blends planned together (the window rule of the module
        docstring), in order; without a compile trade, :meth:`assign` blend by blend.
        ``held``: per blend, what :meth:`hold` answered as it arrived (a blend already
        released keeps that bucket); None: ask now."""
        if self.cost is None:
            return [self.assign(n) for n in naturals]
        with self._lock:
            out: list[BucketKey | None] = [None] * len(naturals)
            clusters: dict[BucketKey, list[int]] = {}  # cluster key -> window indices
            for i, natural in enumerate(naturals):  # the merge rule and stored buckets first
                out[i] = held[i] if held is not None and held[i] is not None else (
                    self._held(natural))
                if out[i] is None:
                    clusters.setdefault(natural, []).append(i)
            existing = list(self.buckets)
            merged: dict = {}

            def merge(a, b):
                if (a, b) not in merged:
                    merged[a, b] = self._merged(a, b)
                return merged[a, b]

            def cost(key, members, own=True):
                return (self.cost.compile_seconds if own else 0.0) + self._padding(
                    key, [naturals[i] for i in members])

            while True:
                best = None  # (saving, kind, a, b, key)
                keys = list(clusters)
                for x, a in enumerate(keys):
                    members = [naturals[i] for i in clusters[a]]
                    here = cost(a, clusters[a])
                    for e in existing:
                        if _holds(e, a) and self._bounded(e, members):
                            delta = cost(e, clusters[a], own=False) - here
                            if delta < 0 and (best is None or delta < best[0]):
                                best = (delta, "join", a, e, e)
                    for b in keys[x + 1:]:
                        key = merge(a, b)
                        both = clusters[a] + clusters[b]
                        if key is None or not self._bounded(key, [naturals[i] for i in both]):
                            continue
                        delta = cost(key, both) - here - cost(b, clusters[b])
                        if delta < 0 and (best is None or delta < best[0]):
                            best = (delta, "merge", a, b, key)
                if best is None:
                    break
                _, kind, a, b, key = best
                if kind == "join":
                    for i in clusters.pop(a):
                        out[i] = key
                else:
                    members = clusters.pop(a) + clusters.pop(b)
                    clusters.setdefault(key, []).extend(members)
            for key, members in clusters.items():
                for i in members:
                    out[i] = key
            for i, key in enumerate(out):
                self._add(key, naturals[i])
            return out


@dataclasses.dataclass(frozen=True)
class PlannedBucket:
    """One bucket of a plan: its shapes, blends, lanes and padding."""

    key: BucketKey
    n_blends: int
    lanes: int
    padding: float  # bucket pixel work / natural pixel work, summed over its blends
    lane_bytes: int
    stored: bool = False  # its block program is in the executable store (no compile)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What :func:`~scarlet_jax.deblend_batch` will run: buckets, lanes, padding, programs.

    ``programs`` lists the compiled programs: per bucket the block program (``block``
    iterations on all lanes) and a small program that starts a fit; a bucket of several
    lanes also has two lane helpers (write a lane, read a finished lane), while a one-lane
    bucket's block program returns the final state itself. Blends whose boxes outgrow their
    slot during the fit move to a bucket with a larger box, which may add programs that no
    plan can foresee.
    """

    buckets: tuple[PlannedBucket, ...]
    n_items: int
    n_failed: int
    errors: dict  # input index -> message
    merge_ratio: float
    block: int
    cost: CompileCost | None = None
    folds: int = 0  # blends placed in a larger bucket by the compile trade
    max_padding: float = MAX_PADDING
    window: int = WINDOW

    @property
    def padding(self) -> float:
        """Pixel work of the plan / pixel work of every blend in its own bucket."""
        work = sum(b.padding * b.n_blends for b in self.buckets)
        return work / max(sum(b.n_blends for b in self.buckets), 1)

    @property
    def lane_padding(self) -> float:
        """Lanes / blends, bucket by bucket, where a bucket holds fewer blends than lanes
        (its idle lanes still compute while it runs)."""
        return sum(max(b.lanes, b.n_blends) for b in self.buckets) / max(
            sum(b.n_blends for b in self.buckets), 1)

    @property
    def programs(self) -> list[str]:
        out = []
        for b in self.buckets:
            k = b.key
            out.append(f"block[{b.lanes} lanes x {k.n_bands}x{k.canvas[0]}x{k.canvas[1]}, "
                       f"{k.slots} slots of {k.box}x{k.box}, fft {k.fft_shape[0]}x"
                       f"{k.fft_shape[1]}, {self.block} iterations]")
        return out

    def __str__(self) -> str:
        lines = [f"Plan: {self.n_items} blends ({self.n_failed} failed) in "
                 f"{len(self.buckets)} buckets, pixel padding {self.padding:.2f}x, lane "
                 f"padding {self.lane_padding:.2f}x",
                 f"  rules: share a bucket when its pixel work is <= {self.merge_ratio}x a "
                 "blend's own; " + (
                     f"else, a window of up to {self.window} blends at once, merge buckets "
                     "while that lowers compiles + padding: sum(extra pixel work) x "
                     f"{self.cost.iterations} iterations x {self.cost.pixel_seconds:.2g} s "
                     f"against {self.cost.compile_seconds:g} s per program, each blend's "
                     f"pixel work <= {self.max_padding:g}x its own (a blend held by a "
                     "stored program within that bound runs there first, and the merges "
                     "never look at the store); "
                     f"{self.folds} blends folded; a blend regrown during its fit joins "
                     f"a bucket holding its new layout (pixel work <= {self.max_padding:g}x)"
                     if self.cost is not None else "no compile trade"),
                 f"  {'bands':>5} {'canvas':>9} {'fft':>9} {'box':>4} {'slots':>5} "
                 f"{'blends':>6} {'lanes':>5} {'padding':>7} {'memory/lane':>11}"]
        for b in self.buckets:
            k = b.key
            lines.append(
                f"  {k.n_bands:>5} {k.canvas[0]:>4}x{k.canvas[1]:<4} "
                f"{k.fft_shape[0]:>4}x{k.fft_shape[1]:<4} {k.box:>4} {k.slots:>5} "
                f"{b.n_blends:>6} {b.lanes:>5} {b.padding:>6.2f}x "
                f"{format_bytes(b.lane_bytes):>11}")
        stored = sum(b.stored for b in self.buckets)
        helpers = ("+1 small program each: the start of a fit" if all(
            b.lanes == 1 for b in self.buckets) else "+3 small lane helpers each: start, "
            "write and read a lane; +1 for one-lane buckets")
        lines.append(f"  programs to compile: {len(self.buckets) - stored} block programs "
                     f"({helpers}); {stored} stored already")
        lines += [f"    {p}{' (stored)' if b.stored else ''}"
                  for p, b in zip(self.programs, self.buckets, strict=True)]
        for i, err in list(self.errors.items())[:10]:
            lines.append(f"  blend {i} fails: {err}")
        return "\n".join(lines)

    __repr__ = __str__


def make_plan(planner: Planner, n_items: int, errors: dict, max_lanes: int, n_devices: int,
              memory_limit: int, max_iter: int, block: int, min_lanes: int = 1,
              window: int = WINDOW) -> Plan:
    """The :class:`Plan` of a planner that has seen every blend."""
    buckets = []
    for key in planner.buckets:
        naturals = planner.members[key]
        per_lane = lane_bytes(key, max_iter)
        lanes = lanes_for(len(naturals), max_lanes, n_devices,
                          cap=max(memory_limit // per_lane, 1), min_lanes=min_lanes)
        padding = sum(pixel_work(key) / pixel_work(n) for n in naturals) / len(naturals)
        stored = key in planner.stored
        buckets.append(PlannedBucket(key, len(naturals), lanes, padding, per_lane, stored))
    return Plan(tuple(buckets), n_items, len(errors), dict(errors), planner.merge_ratio, block,
                planner.cost, planner.folds, planner.max_padding, window)
