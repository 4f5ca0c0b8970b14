"""The one home of the deblending pipeline, on the host:

    validate -> initialise -> plan and pack -> schedule and fit -> unpack

:func:`run` does it for any number of blends; :func:`~scarlet_jax.deblend` is ``run`` of
one blend in one lane and :func:`~scarlet_jax.deblend_batch` is ``run`` of many. A thread
validates, initialises and packs blends ahead of the device (a bounded queue); the streams
(:class:`_Streams`: the caller's thread, and on a CPU one more thread per further core) keep
the lanes busy (:mod:`scarlet_jax.scheduler`); another thread fetches and unpacks finished
blends, and moves a blend whose box outgrew its slot to the
bucket with the next box size (:func:`regrow`), with its state, without leaving the batch.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import packing
from .buckets import bucket_canvas
from .cache import enable_compilation_cache, is_store_on
from .centers import validate_centers
from .components import PackedBlend
from .detect import detect
from .errors import BadInputError
from .fit import FitState, resume_state
from .initialization import init_components
from .memory import canvas_bytes, check_fits, lane_bytes, memory_limit
from .observation import Observation, check_observation
from .options import Options, resolve_options
from .packing import bucket_key, pack_blend
from .plan import COST_ESTIMATES, MERGE_RATIO, WINDOW, Plan, Planner, lanes_for, make_plan
from .reattribute import reattribute_drained
from .result import DeblendResult
from .scheduler import LaneRun, prepare_solo, stored_blocks
from .spectra import refit_spectra

__all__ = ["prepare_blend", "regrow", "unpack_result", "run", "plan", "warmup",
           "default_max_lanes", "default_streams", "RunStats"]

# Lanes of one bucket by default. On XLA:CPU a vmapped lane costs 2-2.7x a lone blend
# (measured on a 64x64, 5-band, 8-slot bucket: 25 ms per block alone, 52-67 ms per lane
# with 2-8 lanes), so a CPU runs each bucket in one lane (buckets still run side by side
# and host work still overlaps); an accelerator wants many lanes.
_CPU_LANES = 1
#: Blends in the first planning window (:func:`_windows`).
FIRST_WINDOW = 16
#: Threads that load or compile buckets' programs ahead of the fit (one-lane buckets). Two
#: measured no faster on the 2-core machine under load (benchmarks/RESULTS.md, wt11h).
PREPARE_THREADS = 1
_ACCELERATOR_LANES = 256


def make_planner(merge_ratio: float, opts: Options, max_lanes: int, devices: int,
                 compile_trade: bool = True) -> Planner:
    """The :class:`~scarlet_jax.plan.Planner` of a run: the merge rule, and the compile
    trade with this backend's estimates; the buckets whose one-lane block program is in the
    executable store are its ``stored`` keys."""
    if not compile_trade:
        return Planner(merge_ratio)
    platform = jax.local_devices()[0].platform
    cost = COST_ESTIMATES.get(platform, COST_ESTIMATES["gpu"])
    cost = dataclasses.replace(cost, iterations=min(cost.iterations, opts.config.max_iter))
    # the programs the executable store holds (one-lane buckets), as the run starts
    stored = stored_blocks(opts.config) if max_lanes == 1 and devices == 1 else ()
    return Planner(merge_ratio, cost, stored)


def default_max_lanes() -> int:
    platform = jax.local_devices()[0].platform
    return _CPU_LANES if platform == "cpu" else _ACCELERATOR_LANES


# ------------------------------------------------------------------------------ stages


def prepare_blend(observation: Observation, centers, opts: Options) -> tuple:
    """Validate, detect when ``centers`` is None, and initialise one blend (host).

    Returns:
      ``(components, centers)``: a list of :class:`~scarlet_jax.components.InitComponent`
      and the validated (S, 2) centers.
    """
    check_observation(observation)
    symmetric, max_sources = opts.run.symmetric, opts.run.max_sources
    if centers is None:
        if isinstance(symmetric, tuple):
            raise BadInputError(
                f"symmetric: {len(symmetric)} per-source flags but no centers (sources are "
                "detected); pass True/False, or the centers"
            )
        centers = detect(observation, max_sources=max_sources)
        if len(centers) == 0:
            raise BadInputError("no sources detected and no centers given")
    centers, kept = validate_centers(centers, observation.shape[1:],
                                     max_sources=max_sources, return_kept=True)
    if isinstance(symmetric, tuple):
        if len(symmetric) != len(kept):
            raise BadInputError(
                f"symmetric: {len(symmetric)} per-source flags for {len(kept)} centers; give "
                "one True/False per center, or one for all"
            )
        flags = np.asarray(symmetric, bool)[kept]  # a merged duplicate: the kept one's flag
    else:
        flags = np.full(len(centers), symmetric)
    comps = init_components(observation, centers, options=opts.init)
    comps = [c._replace(symmetric=bool(flags[c.source]) or c.symmetric) for c in comps]
    return comps, centers


def regrow(observation: Observation, comps, packed: PackedBlend, state: FitState,
           opts: Options, planner: Planner | None = None) -> tuple[PackedBlend, FitState]:
    """Move the components of a blend that outgrew their size class
    (``state.needs_room``) up a class, carrying the fit state
    (:func:`scarlet_jax.packing.regrow`; host arrays in, host arrays out). The step that
    overflowed was not applied: the resumed fit redoes it in the larger class. With a
    ``planner``, the new layout may be an existing bucket's (:meth:`Planner.regrown`)."""
    into = None
    if planner is not None:
        def into(classes):
            return planner.regrown(packed.key._replace(classes=classes)).classes
    packed, state = packing.regrow(observation, comps, packed, state, opts, into=into)
    return packed, jax.device_get(resume_state(state, opts.config))


def unpack_result(
    packed: PackedBlend, state: FitState, observation: Observation, centers, opts: Options,
    losses,
) -> DeblendResult:
    """Device fit state of one blend -> host :class:`DeblendResult` (padding removed, every
    component in one common box, :func:`scarlet_jax.packing.unpack_components`);
    ``losses`` is the loss of each iteration (the fit's ``FitInfo`` stream)."""
    state = jax.device_get(state)
    n_iter = int(state.it)
    losses = np.asarray(losses, np.float32)
    if losses.shape != (n_iter,):
        raise RuntimeError(f"{losses.shape[0]} losses recorded for {n_iter} iterations")
    comps = packing.unpack_components(packed, state)
    result = DeblendResult(
        observation=observation,
        centers=np.asarray(centers, np.float32),
        spectra=comps["spectra"],
        morphs=comps["morphs"],
        origins=comps["origins"],
        support=comps["support"],
        peaks=comps["peaks"],
        component_source=comps["component_source"],
        loss=losses,
        n_iter=n_iter,
        converged=bool(state.converged),
        diverged=bool(state.diverged),
        options=dict(opts.values),
    )
    if opts.run.final_spectra:
        result = refit_spectra(result)
    if opts.run.reattribute_drained > 0:  # issue 13: a drained source's bump back to it
        result = reattribute_drained(result, opts.run.reattribute_drained,
                                     opts.values["init_bump_colour"])
    return result


def failed_result(observation, error: str, opts: Options) -> DeblendResult:
    """The result of a blend that could not be fitted (``status == "failed"``)."""
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


def _as_pair(item):
    if isinstance(item, Observation):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    if isinstance(getattr(item, "observation", None), Observation):
        # a record holding both, e.g. a datasets.SyntheticBlend (its truth is not read)
        return item.observation, getattr(item, "centers", None)
    raise BadInputError(
        f"batch items must be Observation or (observation, centers) pairs, or records with "
        f"an .observation (and .centers), got {type(item).__name__}"
    )


@dataclasses.dataclass
class _Job:
    """One blend in flight on the host: its input, initial components, packed arrays in
    its bucket, and (after a regrow) the state it goes on from."""

    index: int
    observation: Observation
    centers: np.ndarray
    components: list
    natural: object  # its own BucketKey
    bucket: object = None  # the BucketKey it is planned in
    packed: PackedBlend | None = None
    state: FitState | None = None
    losses: list = dataclasses.field(default_factory=list)  # loss per iteration run so far


def _initialise(index: int, item, opts: Options, limit: int) -> _Job:
    """Validate and initialise one blend; check it fits in memory."""
    obs, centers = _as_pair(item)
    check_observation(obs)
    n_bands, height, width = obs.shape
    canvas = (bucket_canvas(height), bucket_canvas(width))
    check_fits(canvas_bytes(n_bands, canvas, canvas), limit,
               f"blend {obs.shape} (bands, height, width)")
    comps, centers = prepare_blend(obs, centers, opts)
    natural = bucket_key(obs, comps, grow_margin=opts.run.grow_margin)
    check_fits(lane_bytes(natural, opts.config.max_iter), limit,
               f"blend {obs.shape} (bands, height, width) with {len(comps)} components "
               f"(slots of {natural.box}x{natural.box})")
    return _Job(index, obs, centers, comps, natural)


def _pack(job: _Job, key, opts: Options) -> _Job:
    job.packed = pack_blend(job.observation, job.components, classes=key.classes,
                            canvas=key.canvas, grow_margin=opts.run.grow_margin)
    return job


# --------------------------------------------------------------------------------- run


@dataclasses.dataclass
class RunStats:
    """What a :func:`run` did (for benchmarks).

    Attributes:
      wall: seconds of the whole run.
      device_wait: seconds the streams waited for the device (block flags), summed over
        streams: the device was busy then.
      host_wait: seconds a stream waited for prepared blends with no lane busy (the mean
        over streams).
      blocks: blocks dispatched, over all buckets.
      lane_blocks: lanes x blocks dispatched; busy_lane_blocks: those that held a blend.
      buckets: bucket keys run (including those opened by regrowth) -> lanes.
      regrown: blends moved to a larger box during the fit.
      prep_seconds: seconds the host thread spent validating, initialising and packing.
      n_prepared: blends the host thread prepared.
      streams: threads that dispatched block programs (:func:`default_streams`).
      stream_blocks: blocks each stream dispatched (in the order the streams ended).
    """

    wall: float = 0.0
    device_wait: float = 0.0
    host_wait: float = 0.0
    blocks: int = 0
    lane_blocks: int = 0
    busy_lane_blocks: int = 0
    buckets: dict = dataclasses.field(default_factory=dict)
    regrown: int = 0
    prep_seconds: float = 0.0
    n_prepared: int = 0
    streams: int = 1
    stream_blocks: list = dataclasses.field(default_factory=list)

    @property
    def lane_occupancy(self) -> float:
        return self.busy_lane_blocks / max(self.lane_blocks, 1)

    @property
    def device_busy(self) -> float:
        return 1.0 - self.host_wait / self.wall if self.wall else 0.0


def _sharding(n_devices: int):
    if n_devices == 1:
        return None
    mesh = Mesh(np.array(jax.local_devices()[:n_devices]), ("blend",))
    return NamedSharding(mesh, PartitionSpec("blend"))


class _Prep(threading.Thread):
    """Validates, initialises, plans and packs blends ahead of the device, into a bounded
    inbox; messages ``("blend", job)``, ``("error", index, observation, err)`` and finally
    ``("end",)``."""

    def __init__(self, items, opts, planner, inbox, limit, stats, background, ahead=False):
        super().__init__(daemon=True)
        self.items, self.opts, self.planner = items, opts, planner
        self.inbox, self.limit, self.stats = inbox, limit, stats
        self.stop = threading.Event()
        self.background = background
        # one-lane buckets: load or compile each bucket's programs ahead, in a thread,
        # holding its blends back until they are ready (the main thread never waits on a
        # compile while other buckets could fit)
        self.ahead = ahead
        self.warmer = ThreadPoolExecutor(max_workers=PREPARE_THREADS) if ahead else None
        self.held: dict = {}  # bucket -> jobs waiting for its programs (None: ready)
        self.lock = threading.Lock()

    def _ready(self, key, packed):
        try:
            prepare_solo(packed, None, self.opts.params, self.opts.config)
        except Exception:  # noqa: BLE001 - the main thread compiles it and sees the error
            pass
        finally:
            with self.lock:
                jobs, self.held[key] = self.held[key], None
            for job in jobs:
                self._put(("blend", job))

    def _send(self, job):
        """Hand a packed job to the main thread, once its bucket's programs are ready."""
        if not self.ahead:
            return self._put(("blend", job))
        key = job.packed.key
        with self.lock:
            jobs = self.held.get(key, ())
            if jobs is not None:
                self.held[key] = list(jobs) + [job]
            if jobs == ():  # the first job of the bucket: prepare its programs
                self.warmer.submit(self._ready, key, job.packed)
        if jobs is None:
            self._put(("blend", job))

    def _put(self, msg):
        while not self.stop.is_set():
            try:
                self.inbox.put(msg, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self):
        try:
            for jobs in _windows(self.items, self.opts, self.limit, self.planner, self.stats):
                if self.stop.is_set():
                    return
                for job in jobs:
                    if isinstance(job, tuple):  # ("error", index, observation, err)
                        self._put(job)
                        continue
                    t0 = time.perf_counter()
                    try:
                        job = _pack(job, job.bucket, self.opts)
                    except (BadInputError, ValueError) as err:
                        job = ("error", job.index, job.observation, err)
                    self.stats.prep_seconds += time.perf_counter() - t0
                    if isinstance(job, tuple):
                        self._put(job)
                    else:
                        self._send(job)
            if self.warmer is not None:
                self.warmer.shutdown(wait=True)  # every held job is sent
            self._put(("end",))
        except BaseException as err:  # a bug: hand it to the main thread
            self._put(("crash", err))


def _windows(items, opts: Options, limit: int, planner: Planner, stats: RunStats,
             window: int = WINDOW):
    """Initialise the blends and plan them a window at a time
    (:meth:`~scarlet_jax.plan.Planner.assign_window`; the first window holds
    :data:`FIRST_WINDOW` blends and each next one twice as many, up to ``window``).

    A blend whose bucket is known as soon as it is initialised (an existing bucket by the
    merge rule, or a stored one: :meth:`~scarlet_jax.plan.Planner.hold`; every blend when
    there is no compile trade) is yielded at once, so the device need not wait for its
    window; the window then plans only the others, exactly as it would have. Yields lists
    of jobs (``job.bucket`` set) and ``("error", index, observation, err)`` tuples; a
    blend's bucket does not depend on when it is yielded (the plan is that of input
    order)."""
    items = iter(enumerate(items))
    size = FIRST_WINDOW
    while True:
        chunk = list(itertools.islice(items, size))
        size = min(2 * size, window)
        if not chunk:
            return
        jobs = []  # the window's blends, job.bucket set where Planner.hold knew it
        for i, item in chunk:
            t0 = time.perf_counter()
            try:
                job = _initialise(i, item, opts, limit)
            except (BadInputError, ValueError) as err:
                obs = item[0] if isinstance(item, (tuple, list)) and item else item
                job = ("error", i, obs, err)
            stats.n_prepared += 1
            if isinstance(job, tuple):
                stats.prep_seconds += time.perf_counter() - t0
                yield [job]
                continue
            if planner.cost is None:  # blend by blend: its bucket is decided now
                job.bucket = planner.assign(job.natural)
            else:
                job.bucket = planner.hold(job.natural)
                jobs.append(job)
            stats.prep_seconds += time.perf_counter() - t0
            if job.bucket is not None:
                yield [job]
        if not jobs:
            continue
        t0 = time.perf_counter()
        rest = [j for j in jobs if j.bucket is None]  # not released yet
        keys = planner.assign_window([j.natural for j in jobs], [j.bucket for j in jobs])
        for job, key in zip(jobs, keys, strict=True):
            job.bucket = key  # (a released blend keeps its bucket: the same key)
        stats.prep_seconds += time.perf_counter() - t0
        yield rest


def default_streams(max_lanes: int, devices: int, n_items: int) -> int:
    """Threads that dispatch block programs (:class:`_Streams`): with one-lane buckets on
    a CPU, one per core the process may use (XLA:CPU runs the programs that one thread
    dispatches one after another, each on one core, while two threads' programs run side
    by side); else one."""
    if max_lanes != 1 or devices != 1 or n_items < 2:
        return 1
    if jax.local_devices()[0].platform != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_items))


class _Streams:
    """The device side of a :func:`run`: ``n`` streams (threads; stream 0 is the caller's),
    each dispatching the blocks of its own :class:`~scarlet_jax.scheduler.LaneRun` s, fed
    from one inbox of prepared blends.

    With one stream a bucket is one run and the stream takes every message it can. With
    several (one-lane buckets on a CPU: :func:`default_streams`), every blend is a run of
    its own and a stream holds at most ``depth`` blends, so the streams share the work
    blend by blend; a blend's result does not depend on the stream that fits it (the same
    program on the same arrays).

    A stream goes round its runs: it reads a run's flags (waiting for its oldest block
    when ``ahead`` is 0), hands finished blends to the unpacking thread, and at once
    dispatches the run's next block, so the blocks of its other runs queue meanwhile and
    the core never waits for the host's bookkeeping.
    """

    def __init__(self, n, inbox, finish, helper, opts, max_lanes, devices, limit, sharding,
                 ahead, stats, raise_errors, progress, results, depth: int = 2):
        self.n, self.inbox, self.finish, self.helper = n, inbox, finish, helper
        self.opts, self.max_lanes, self.devices = opts, max_lanes, devices
        self.limit, self.sharding, self.ahead = limit, sharding, ahead
        self.stats, self.raise_errors, self.progress = stats, raise_errors, progress
        self.results = results
        self.depth = depth if n > 1 else None  # None: no bound (one stream takes all)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.prep_done = False
        self.regrowing = 0
        self.futures: list = []
        self.errors: list = []
        self.skipped: list = []  # (index, error) of the blends that could not be fitted

    def run(self) -> None:
        """Run every stream to the end; re-raise the first error of any stream."""
        threads = [threading.Thread(target=self._guarded, args=(i,), daemon=True)
                   for i in range(1, self.n)]
        for t in threads:
            t.start()
        self._guarded(0)
        for t in threads:
            t.join()
        if self.errors:
            raise self.errors[0]
        for f in self.futures:
            f.result()  # re-raise a host thread's error

    def _guarded(self, index: int) -> None:
        try:
            self._loop()
        except BaseException as err:  # noqa: BLE001 - stop every stream, raise in the caller
            with self.lock:
                self.errors.append(err)
            self.stop.set()

    def _finished(self) -> bool:
        with self.lock:
            return self.prep_done and self.regrowing == 0

    def _take(self, msg, runs: dict) -> None:
        """Handle one inbox message."""
        if msg[0] == "crash":
            raise msg[1]
        if msg[0] == "end":
            with self.lock:
                self.prep_done = True
            return
        if msg[0] == "error":
            _, i, obs, err = msg
            if self.raise_errors:
                raise err
            with self.lock:
                self.skipped.append((i, err))  # warned by the caller, in input order
            self.results[i] = failed_result(obs, str(err), self.opts)
            if self.progress is not None:
                self.progress.update(1)
            return
        job = msg[1]
        if msg[0] == "again":
            with self.lock:
                self.regrowing -= 1
                self.stats.regrown += 1
        key = job.packed.key
        run_key = key if self.depth is None else (key, job.index)  # a run per blend
        pending = runs.get(run_key)
        if isinstance(pending, LaneRun):
            pending.queue.append(job)
        else:
            runs[run_key] = (pending or []) + [job]

    def _held(self, runs: dict) -> int:
        """Blends a stream holds (queued or in lanes)."""
        n = 0
        for r in runs.values():
            n += len(r) if isinstance(r, list) else len(r.queue) + sum(
                j is not None for j in r.jobs)
        return n

    def _loop(self) -> None:
        stats, opts = self.stats, self.opts
        runs: dict = {}
        blocks = lane_blocks = busy_lane_blocks = 0
        device_wait = host_wait = 0.0
        poll = None if self.n == 1 else 0.02  # several streams: "end" is seen by one
        try:
            while not self.stop.is_set():
                busy = any(isinstance(r, LaneRun) and r.has_work for r in runs.values())
                while self.depth is None or self._held(runs) < self.depth:
                    # take what the host threads have ready; wait only when idle
                    wait = not busy and not self._finished()
                    t0 = time.perf_counter()
                    try:
                        msg = self.inbox.get(block=wait, timeout=poll if wait else None)
                    except queue.Empty:
                        break
                    finally:
                        if wait:
                            host_wait += time.perf_counter() - t0
                    self._take(msg, runs)
                    busy = True  # check for more without waiting
                # start the buckets whose lane count is known
                for key, run_ in list(runs.items()):
                    if isinstance(run_, list) and (len(run_) >= self.max_lanes or
                                                   self.prep_done):
                        bucket = run_[0].packed.key
                        cap = max(self.limit // lane_bytes(bucket, opts.config.max_iter), 1)
                        n_lanes = lanes_for(len(run_), self.max_lanes, self.devices, cap=cap)
                        lane_run = LaneRun(bucket, n_lanes, opts.params, opts.config,
                                           self.sharding, self.ahead)
                        lane_run.queue.extend(run_)
                        runs[key] = lane_run
                        stats.buckets[bucket] = n_lanes
                active = [r for r in runs.values() if isinstance(r, LaneRun) and r.has_work]
                if not active:
                    if self._finished() and not any(isinstance(r, list)
                                                    for r in runs.values()):
                        break
                    continue
                for r in active:
                    if r.pending:
                        t0 = time.perf_counter()
                        done = r.retire()
                        device_wait += time.perf_counter() - t0
                        for job, needs_room, state in done:
                            if needs_room:
                                with self.lock:
                                    self.regrowing += 1
                            self.futures.append(self.helper.submit(self.finish, job,
                                                                   needs_room, state))
                    if r.has_work:
                        r.refill()
                        busy_lane_blocks += sum(j is not None for j in r.jobs)
                        r.dispatch()
                        blocks += 1
                        lane_blocks += r.n_lanes
                    elif self.depth is not None:  # a run per blend: the blend is done
                        del runs[next(k for k, v in runs.items() if v is r)]
        finally:
            with self.lock:
                stats.blocks += blocks
                stats.stream_blocks.append(blocks)
                stats.lane_blocks += lane_blocks
                stats.busy_lane_blocks += busy_lane_blocks
                stats.device_wait += device_wait
                stats.host_wait += host_wait / self.n


def run(items, opts: Options, *, max_lanes: int | None = None, devices: int = 1,
        raise_errors: bool = False, merge_ratio: float = MERGE_RATIO,
        compile_trade: bool = True, memory_limit_bytes=None, ahead: int | None = None,
        streams: int | None = None, progress=None,
        stats: RunStats | None = None) -> list[DeblendResult]:
    """Deblend ``items`` (``(observation, centers)`` pairs or observations) in input order.

    Args:
      items: the blends.
      opts: resolved options (shared by every blend).
      max_lanes: most lanes of a bucket (default :func:`default_max_lanes`).
      devices: local devices the lanes are sharded over.
      raise_errors: raise a blend's :class:`BadInputError` (else it gets a failed result
        and a warning).
      merge_ratio: the plan's merge rule (:mod:`scarlet_jax.plan`).
      compile_trade: also fold a blend into a larger bucket when its padding costs less
        than compiling its own bucket (:mod:`scarlet_jax.plan`).
      memory_limit_bytes: see :func:`scarlet_jax.memory.memory_limit`.
      ahead: blocks kept in flight before the host reads a bucket's flags. Default 1 with
        several lanes (the device does not wait for the host between blocks; a finished
        lane idles one block), 0 with one lane (a lone lane would compute a whole block
        past its blend's stop, and other blends' blocks keep the device busy meanwhile).
      streams: threads dispatching block programs (default :func:`default_streams`: one
        per CPU core with one-lane buckets, else one).
      progress: an object with ``update(n)`` called as blends finish.
      stats: a :class:`RunStats` to fill in.
    """
    enable_compilation_cache()
    t_start = time.perf_counter()
    stats = RunStats() if stats is None else stats
    items = list(items)
    max_lanes = default_max_lanes() if max_lanes is None else int(max_lanes)
    ahead = (1 if max_lanes > 1 else 0) if ahead is None else int(ahead)
    streams = default_streams(max_lanes, devices, len(items)) if streams is None else int(
        streams)
    if streams < 1 or (streams > 1 and (max_lanes != 1 or devices != 1)):
        # several streams fit one blend per run: only one-lane buckets on one device
        raise BadInputError(f"streams={streams}: must be 1, or several with max_lanes=1 "
                            f"on one device (got max_lanes={max_lanes}, devices={devices})")
    limit = memory_limit(memory_limit_bytes)
    planner = make_planner(merge_ratio, opts, max_lanes, devices, compile_trade)
    sharding = _sharding(devices)
    results: list[DeblendResult | None] = [None] * len(items)
    inbox: queue.Queue = queue.Queue(maxsize=64)
    background = len(items) > 1
    ahead_programs = background and max_lanes == 1 and devices == 1 and is_store_on()
    prep = _Prep(items, opts, planner, inbox, limit, stats, background, ahead_programs)
    if background:
        prep.start()
    else:
        prep.run()
    helper = ThreadPoolExecutor(max_workers=1)

    def finish(job, needs_room, state):
        try:
            return _finish(job, needs_room, state)
        except BaseException as err:  # a bug: hand it to the main thread (never hang)
            prep._put(("crash", err))  # gives up once the run has stopped
            raise

    def _finish(job, needs_room, state):
        if needs_room:
            state = jax.device_get(state)
            job.packed, job.state = regrow(job.observation, job.components, job.packed,
                                           state, opts, planner)
            if ahead_programs:  # its new layout's block program, here, not in the main thread
                prepare_solo(job.packed, job.state, opts.params, opts.config)
            prep._put(("again", job))
            return None
        # host copies first: slicing device arrays would compile a program per shape
        state = jax.device_get(state)
        job.packed = job.packed._replace(placement=jax.device_get(job.packed.placement))
        res = unpack_result(job.packed, state, job.observation, job.centers, opts,
                            job.losses)
        results[job.index] = res
        if progress is not None:
            progress.update(1)
        return res

    device = _Streams(streams, inbox, finish, helper, opts, max_lanes, devices, limit,
                      sharding, ahead, stats, raise_errors, progress, results)
    try:
        device.run()
    finally:
        prep.stop.set()
        helper.shutdown(wait=True)
    for i, err in sorted(device.skipped, key=lambda s: s[0]):
        warnings.warn(f"blend {i} skipped: {err}", stacklevel=3)
    stats.streams = streams
    stats.wall = time.perf_counter() - t_start
    return results


# ------------------------------------------------------------------------- plan/warmup


def _plan_jobs(items, max_lanes, devices, merge_ratio, memory_limit_bytes, options):
    """Initialise every blend and plan them: ``(plan, options, first job of each bucket)``."""
    devices = len(jax.local_devices()) if devices is None else int(devices)
    opts = resolve_options(**options)
    limit = memory_limit(memory_limit_bytes)
    max_lanes = default_max_lanes() if max_lanes is None else int(max_lanes)
    planner = make_planner(merge_ratio, opts, max_lanes, devices)
    errors, first = {}, {}
    for jobs in _windows(items, opts, limit, planner, RunStats()):
        for job in jobs:
            if isinstance(job, tuple):
                errors[job[1]] = str(job[3])
            else:
                first.setdefault(job.bucket, job)
    the_plan = make_plan(planner, len(items), errors, max_lanes, devices, limit,
                         opts.config.max_iter, opts.config.block)
    return the_plan, opts, first, devices


def plan(items, *, max_lanes: int | None = None, devices: int | None = None,
         merge_ratio: float = MERGE_RATIO, memory_limit=None, **options) -> Plan:
    """What :func:`~scarlet_jax.deblend_batch` would compile and run for ``items`` with the
    same arguments, without fitting: the buckets, their blends and lanes, the padding, and
    the programs. Validates and initialises every blend (host work only; nothing is
    compiled)."""
    return _plan_jobs(list(items), max_lanes, devices, merge_ratio, memory_limit, options)[0]


def warmup(items, *, max_lanes: int | None = None, devices: int | None = None,
           merge_ratio: float = MERGE_RATIO, memory_limit=None, **options) -> Plan:
    """Compile ahead of time the programs :func:`~scarlet_jax.deblend_batch` needs for
    ``items`` with the same arguments (one blend of each planned bucket is fitted for one
    block, in the bucket's lanes); with the persistent compilation cache on, later
    processes load them from disk. Returns the :class:`Plan`."""
    enable_compilation_cache()
    the_plan, opts, first, devices = _plan_jobs(list(items), max_lanes, devices, merge_ratio,
                                                memory_limit, options)
    sharding = _sharding(devices)
    for bucket in the_plan.buckets:
        lane_run = LaneRun(bucket.key, bucket.lanes, opts.params, opts.config, sharding)
        lane_run.queue.append(_pack(first[bucket.key], bucket.key, opts))
        lane_run.refill()
        lane_run.dispatch()
        lane_run.retire(final=True)
        jax.block_until_ready(lane_run.lanes)
    return the_plan
