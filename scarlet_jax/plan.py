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

Blends are assigned in input order (the first blend of a kind opens its bucket), so a
plan is deterministic; a bucket's lanes are ``min(max_lanes, next power of two >= its
blends)``, rounded to a multiple of the device count and capped by memory.
"""

from __future__ import annotations

import dataclasses
import threading

from .buckets import classes_hold
from .components import BucketKey
from .memory import format_bytes, lane_bytes

__all__ = ["MERGE_RATIO", "pixel_work", "Planner", "PlannedBucket", "Plan", "lanes_for"]

#: Default bound on a merged bucket's pixel work relative to a blend's own bucket.
MERGE_RATIO = 1.25


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
    """Assigns natural bucket keys to buckets by the merge rule (thread-safe, in order)."""

    def __init__(self, merge_ratio: float = MERGE_RATIO):
        if not merge_ratio >= 1:
            raise ValueError(f"merge_ratio must be >= 1, got {merge_ratio}")
        self.merge_ratio = float(merge_ratio)
        self.buckets: list[BucketKey] = []
        self.members: dict[BucketKey, list[BucketKey]] = {}
        self._lock = threading.Lock()

    def assign(self, natural: BucketKey) -> BucketKey:
        """The bucket a blend of natural bucket ``natural`` runs in (opening it if new)."""
        with self._lock:
            budget = self.merge_ratio * pixel_work(natural)
            fits = [k for k in self.buckets if _holds(k, natural) and pixel_work(k) <= budget]
            key = min(fits, key=pixel_work) if fits else natural
            if not fits:
                self.buckets.append(key)
                self.members[key] = []
            self.members[key].append(natural)
            return key


@dataclasses.dataclass(frozen=True)
class PlannedBucket:
    """One bucket of a plan: its shapes, blends, lanes and padding."""

    key: BucketKey
    n_blends: int
    lanes: int
    padding: float  # bucket pixel work / natural pixel work, summed over its blends
    lane_bytes: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """What :func:`~scarlet_jax.deblend_batch` will run: buckets, lanes, padding, programs.

    ``programs`` lists the compiled programs: per bucket the block program (``block``
    iterations on all lanes) and its three small helpers (start a lane's state, write a
    lane, read a finished lane). Blends whose boxes outgrow their slot during the fit move
    to a bucket with a larger box, which may add programs that no plan can foresee.
    """

    buckets: tuple[PlannedBucket, ...]
    n_items: int
    n_failed: int
    errors: dict  # input index -> message
    merge_ratio: float
    block: int

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
                 f"padding {self.lane_padding:.2f}x (merge_ratio {self.merge_ratio})",
                 f"  {'bands':>5} {'canvas':>9} {'fft':>9} {'box':>4} {'slots':>5} "
                 f"{'blends':>6} {'lanes':>5} {'padding':>7} {'memory/lane':>11}"]
        for b in self.buckets:
            k = b.key
            lines.append(
                f"  {k.n_bands:>5} {k.canvas[0]:>4}x{k.canvas[1]:<4} "
                f"{k.fft_shape[0]:>4}x{k.fft_shape[1]:<4} {k.box:>4} {k.slots:>5} "
                f"{b.n_blends:>6} {b.lanes:>5} {b.padding:>6.2f}x "
                f"{format_bytes(b.lane_bytes):>11}")
        lines.append(f"  programs to compile: {len(self.buckets)} block programs (+3 small "
                     "lane helpers each)")
        lines += [f"    {p}" for p in self.programs]
        for i, err in list(self.errors.items())[:10]:
            lines.append(f"  blend {i} fails: {err}")
        return "\n".join(lines)

    __repr__ = __str__


def make_plan(planner: Planner, n_items: int, errors: dict, max_lanes: int, n_devices: int,
              memory_limit: int, max_iter: int, block: int, min_lanes: int = 1) -> Plan:
    """The :class:`Plan` of a planner that has seen every blend."""
    buckets = []
    for key in planner.buckets:
        naturals = planner.members[key]
        per_lane = lane_bytes(key, max_iter)
        lanes = lanes_for(len(naturals), max_lanes, n_devices,
                          cap=max(memory_limit // per_lane, 1), min_lanes=min_lanes)
        padding = sum(pixel_work(key) / pixel_work(n) for n in naturals) / len(naturals)
        buckets.append(PlannedBucket(key, len(naturals), lanes, padding, per_lane))
    return Plan(tuple(buckets), n_items, len(errors), dict(errors), planner.merge_ratio, block)
