"""Batch throughput and step memory of the fit.

Blends/s against batch size for 64x64, 5-band synthetic blends with 8 components at a fixed
100 iterations (monotonicity on; and a bare loop without monotonicity for comparison), on
the default JAX backend. Memory: the compiled step's temporary bytes per blend
(``jit(step).lower(...).compile().memory_analysis()``) against the bytes of one blend's
data + parameters + optimiser state, for the hand-written gradient and for ``jax.grad`` of
the same loss.

The mixed, survey-like set (``--mixed``): blends of several sizes, 2-6 sources of
log-uniform brightness and mixed radii, fitted to convergence. Prints warm
``deblend_batch`` against a warm loop of ``deblend``, fresh-process times with an empty and
with a warm persistent compilation cache, the compiles and compile time per program, the
plan's padding, the device-busy fraction and how many blends/s the host side prepares.

  python benchmarks/bench_batch.py                       # CPU: batch sizes 1..64
  python benchmarks/bench_batch.py --sizes 1 8 64 256 1024 --out benchmarks/results
  python benchmarks/bench_batch.py --mixed --n 50        # the mixed set
  python benchmarks/bench_batch.py --mixed --warm-only --repeats 5   # its warm figures only
  python benchmarks/bench_batch.py --large --iters 100   # one 400x400 blend, 50 sources
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import scarlet_jax as sj
from scarlet_jax.batch import fit_batch, stack_trees
from scarlet_jax.fft import convolve
from scarlet_jax.fit import init_fit_state, make_optimizer, make_step
from scarlet_jax.likelihood import loss_and_grads
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend
from scarlet_jax.pipeline import RunStats, prepare_blend, run
from scarlet_jax.render import insert

SHAPE = (64, 64)
N_COMPONENTS = 8


def make_packed(n: int, seed: int, opts, box: int):
    """n packed blends with exactly 8 single-component sources, one shared bucket."""
    blends = sj.datasets.synthetic_blends(n, seed=seed, shape=SHAPE, n_sources=(8, 8),
                                          min_separation=6.0, edge_margin=6.0)
    packed = []
    for b in blends:
        comps, _ = prepare_blend(b.observation, b.centers, opts)
        comps = (comps + comps)[:N_COMPONENTS]  # exactly 8 components
        packed.append(pack_blend(b.observation, comps, box=box, slots=N_COMPONENTS))
    return packed


def fixed_shapes(opts):
    return dataclasses.replace(opts, config=dataclasses.replace(opts.config, rebucket=False))


def stacked(packed, size):
    reps = [packed[i % len(packed)] for i in range(size)]
    return (stack_trees([p.data for p in reps]), stack_trees([p.placement for p in reps]),
            stack_trees([p.components for p in reps]))


def time_batch(args_, opts, repeats):
    data, placement, comps = args_
    out = fit_batch(data, placement, comps, opts.params, opts.config)  # compile
    jax.block_until_ready(out)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fit_batch(data, placement, comps, opts.params, opts.config))
        best = min(best, time.perf_counter() - t0)
    assert int(out[0].it.min()) == opts.config.max_iter
    return best


def nbytes(tree) -> int:
    return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def step_memory(p, opts, gradient_fn):
    optimizer = make_optimizer(opts.config, p.data, opts.params)
    state = init_fit_state(p.components, p.placement, optimizer, opts.config)
    step = make_step(p.data, p.placement, opts.params, opts.config, gradient_fn=gradient_fn)
    mem = jax.jit(step).lower(state).compile().memory_analysis()
    payload = nbytes(p.data) + nbytes(p.placement) + nbytes(state.components) + nbytes(
        state.opt_state)
    return int(mem.temp_size_in_bytes), payload


def autodiff_gradients(components, placement, data):
    """``jax.grad`` of the same loss, built from the plain insert and convolve (no custom
    rules), so autodiff keeps its own tape."""

    def loss(c):
        morphs = c.morphs * placement.support
        boxes = c.spectra[:, :, None, None] * morphs[:, None]
        model = insert(boxes, placement.origins, data.images.shape[-2:], data.margin)
        diff = convolve(model, data.kernel_fft, data.fft_shape) - data.images
        return 0.5 * jnp.sum(data.weights * diff * diff)

    return jax.value_and_grad(loss)(components)


# ---------------------------------------------------------------------------- mixed set

MIXED_SHAPES = [(48, 48), (64, 64), (64, 64), (80, 80), (64, 96)]


def mixed_items(n: int, seed: int = 7):
    """A survey-like set: sizes, source counts (2-6), brightness and radii all vary."""
    blends = sj.datasets.synthetic_blends(n, seed=seed, shape=MIXED_SHAPES, n_sources=(2, 6),
                                          flux_range=(100.0, 20000.0))
    return [(b.observation, b.centers) for b in blends]


class _CompileLog(logging.Handler):
    """Collects ``jax_log_compiles`` lines: (stage, program name, seconds), stage one of
    ``trace`` (jaxpr tracing), ``lower`` (MLIR lowering) and ``compile`` (XLA)."""

    patterns = (
        ("compile", re.compile(r"Finished XLA compilation of jit\((\w+)\) in ([0-9.e-]+) sec")),
        ("trace", re.compile(r"Finished tracing (\w+) for jit in ([0-9.e-]+) sec")),
        ("lower", re.compile(r"Finished jaxpr to MLIR module conversion jit\((\w+)\) in "
                             r"([0-9.e-]+) sec")),
    )

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.events = []

    def emit(self, record):
        message = record.getMessage()
        for stage, pattern in self.patterns:
            m = pattern.search(message)
            if m:
                self.events.append((stage, m.group(1), float(m.group(2))))

    def seconds(self, stage=None) -> float:
        return sum(s for st, _, s in self.events if stage is None or st == stage)

    def per_program(self, stage="compile") -> dict:
        out = {}
        for st, name, sec in self.events:
            if st == stage:
                out.setdefault(name, []).append(sec)
        return out


def _watch_compiles() -> _CompileLog:
    handler = _CompileLog()
    logging.getLogger("jax").addHandler(handler)
    logging.getLogger("jax").setLevel(logging.DEBUG)
    jax.config.update("jax_log_compiles", True)
    return handler


def child(args):
    """In a fresh process: ``deblend_batch`` on the mixed set; prints JSON timings."""
    from scarlet_jax import cache

    t0 = time.perf_counter()
    items = mixed_items(args.n)
    log = _watch_compiles()
    loads = []
    load = cache._load

    def timed_load(path):  # executables read from the store (see scarlet_jax/cache.py)
        t = time.perf_counter()
        out = load(path)
        loads.append((path.name.split("-")[0], time.perf_counter() - t, out is not None))
        return out

    cache._load = timed_load
    stats = RunStats()
    t1 = time.perf_counter()
    run(items, resolve_options(max_iter=args.iters), stats=stats)  # = sj.deblend_batch
    total = time.perf_counter() - t1
    per = log.per_program()
    print("JSON" + json.dumps(dict(
        wait_for_programs=stats.host_wait, buckets_run=len(stats.buckets),
        regrown=stats.regrown,
        total=total, compile=log.seconds("compile"), trace=log.seconds("trace"),
        lower=log.seconds("lower"), data=t1 - t0, compiles=sum(map(len, per.values())),
        block_programs=len(per.get("advance_one", [])) + len(per.get("advance", [])),
        compile_per_program={k: [round(v, 3) for v in vs] for k, vs in per.items()},
        loaded=sum(ok for _, _, ok in loads), load_seconds=sum(t for _, t, _ in loads))))


def fresh(args, cache: str) -> dict:
    env = dict(os.environ, SCARLET_JAX_CACHE=cache)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", "--n", str(args.n),
                          "--iters", str(args.iters)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    rec = json.loads(out.stdout.split("JSON")[-1])
    rec["process_wall"] = wall
    return rec


def mixed_main(args):
    from scarlet_jax.options import resolve_options
    from scarlet_jax.pipeline import _pack, _windows, make_planner
    from scarlet_jax.plan import MERGE_RATIO

    items = mixed_items(args.n)
    opts = resolve_options(max_iter=args.iters)
    plan = sj.plan(items, max_iter=args.iters)
    print(plan)

    # host side alone: validate + initialise + plan (windows) + pack
    planner = make_planner(MERGE_RATIO, opts, 1, 1)
    t0 = time.perf_counter()
    for jobs in _windows(items, opts, 1 << 62, planner, RunStats()):
        for job in jobs:
            _pack(job, job.bucket, opts)
    host_rate = len(items) / (time.perf_counter() - t0)

    log = _watch_compiles()
    t0 = time.perf_counter()
    sj.deblend_batch(items, max_iter=args.iters)  # compiles
    first = time.perf_counter() - t0
    per_program = log.per_program()
    advance_compiles = len(per_program.get("advance", [])) + len(
        per_program.get("advance_one", []))
    for item in items:  # compile every single-blend program
        sj.deblend(*item, max_iter=args.iters)
    for streams in (None, 1):  # the warm plan: once the loop's programs are stored too
        run(items, opts, streams=streams)
    # interleaved, best of each (the machine is shared): the loop of deblend, deblend_batch
    # (default streams) and deblend_batch with one stream
    load_start = os.getloadavg()[0]
    loop_s, batch_s, one_s, cpu = [], [], [], dict(loop=[], batch=[], one=[])
    stats = None
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for item in items:
            sj.deblend(*item, max_iter=args.iters)
        loop_s.append(time.perf_counter() - t0)
        cpu["loop"].append(time.process_time() - c0)
        for name, streams, times in (("batch", None, batch_s), ("one", 1, one_s)):
            st = RunStats()
            t0, c0 = time.perf_counter(), time.process_time()
            run(items, opts, stats=st, streams=streams)
            times.append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            if name == "batch":
                stats = st
    load_end = os.getloadavg()[0]
    warm_batch, warm_loop, warm_one = min(batch_s), min(loop_s), min(one_s)

    if args.warm_only:
        empty = warm_cache = None
    else:
        with tempfile.TemporaryDirectory() as cache:
            empty = fresh(args, cache)
            warm_cache = fresh(args, cache)

    iters = [r.n_iter for r in sj.deblend_batch(items, max_iter=args.iters)]
    rec = dict(
        n_blends=len(items), shapes=MIXED_SHAPES, max_iter=args.iters,
        iterations=dict(median=float(np.median(iters)), max=int(max(iters))),
        buckets=len(plan.buckets), lanes=[b.lanes for b in plan.buckets],
        pixel_padding=plan.padding, lane_padding=plan.lane_padding,
        warm_batch_s=warm_batch, warm_loop_s=warm_loop, speedup=warm_loop / warm_batch,
        streams=stats.streams, warm_batch_one_stream_s=warm_one,
        speedup_one_stream=warm_loop / warm_one, warm_runs_s=dict(
            loop=loop_s, batch=batch_s, one_stream=one_s), warm_cpu_s=cpu,
        load_average=[load_start, load_end], buckets_warm=len(stats.buckets),
        first_batch_in_process_s=first, advance_compiles=advance_compiles,
        compile_s_per_program={k: [round(v, 3) for v in vs] for k, vs in per_program.items()},
        fresh_empty_cache=empty, fresh_warm_cache=warm_cache,
        device_busy=stats.device_busy, lane_occupancy=stats.lane_occupancy,
        device_wait_s=stats.device_wait, host_wait_s=stats.host_wait,
        host_prep_blends_per_s=host_rate, regrown=stats.regrown,
        lane_iterations=stats.lane_blocks * opts["block"], blend_iterations=int(sum(iters)),
    )
    if empty is not None:
        rec.update(
            fresh_empty_compile_fraction=empty["compile"] / empty["total"],
            fresh_empty_trace_lower_compile_fraction=(
                empty["compile"] + empty["trace"] + empty["lower"]) / empty["total"],
            fresh_warm_over_warm=warm_cache["total"] / warm_batch)
    print(f"\nmixed set: {len(items)} blends, shapes {sorted(set(MIXED_SHAPES))}, 2-6 sources, "
          f"max_iter {args.iters} (iterations median {rec['iterations']['median']:.0f}, max "
          f"{rec['iterations']['max']})")
    print(f"  warm deblend_batch        {warm_batch:8.2f} s   ({stats.streams} streams; "
          f"{len(stats.buckets)} buckets once every program is stored)")
    print(f"  warm, one stream          {warm_one:8.2f} s")
    print(f"  warm loop of deblend      {warm_loop:8.2f} s   (batch {rec['speedup']:.2f}x faster; "
          f"one stream {rec['speedup_one_stream']:.2f}x)")
    print(f"  warm CPU seconds (best)   loop {min(cpu['loop']):.2f}, batch "
          f"{min(cpu['batch']):.2f}, one stream {min(cpu['one']):.2f}; load average "
          f"{load_start:.1f} -> {load_end:.1f}")
    for name, f in (("empty", empty), ("warm", warm_cache)):
        if f is None:
            continue
        print(f"  fresh, {name} cache {'' if name == 'warm' else ' '}       {f['total']:8.2f} s   "
              f"(XLA compile {f['compile']:.2f} s = {f['compile'] / f['total']:.0%}, tracing "
              f"{f['trace']:.2f} s, lowering {f['lower']:.2f} s; {f['compiles']} programs "
              f"compiled, {f['block_programs']} of them block programs; {f['loaded']} "
              f"executables loaded in {f['load_seconds']:.2f} s; {f['buckets_run']} buckets "
              f"run, {f['regrown']} blends regrown; the fit waited {f['wait_for_programs']:.2f} s "
              "for programs and prepared blends)")
    if empty is not None:
        print(f"  fresh warm / warm         {rec['fresh_warm_over_warm']:.2f}x; fresh empty: "
              f"compile share {rec['fresh_empty_compile_fraction']:.0%} (with tracing and "
              f"lowering {rec['fresh_empty_trace_lower_compile_fraction']:.0%}; summed over "
              "threads)")
        print("  fresh, empty cache, XLA compile per program (s): " + ", ".join(
            f"{k} {np.mean(v):.2f} x{len(v)}" for k, v in sorted(
                empty["compile_per_program"].items(), key=lambda kv: -sum(kv[1]))[:8]))
    print(f"  block programs compiled   {advance_compiles} for {len(plan.buckets)} planned "
          f"buckets; per program (s): " + ", ".join(
              f"{k} {np.mean(v):.2f} x{len(v)}" for k, v in per_program.items()
              if k in ("advance", "advance_one", "read_lane", "write_lane", "init_state")))
    print(f"  padding                   pixels {plan.padding:.2f}x, lanes "
          f"{plan.lane_padding:.2f}x; lane occupancy {stats.lane_occupancy:.0%}")
    print(f"  device busy               {stats.device_busy:.0%} (host waited "
          f"{stats.host_wait:.2f} s for prepared blends)")
    print(f"  host prep alone           {host_rate:8.1f} blends/s")
    print(f"  device work               {rec['lane_iterations']} lane-iterations dispatched for "
          f"{rec['blend_iterations']} blend iterations "
          f"({rec['lane_iterations'] / rec['blend_iterations']:.2f}x; a one-lane block leaves "
          "once its blend stops)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch_mixed_{jax.default_backend()}.json"
    path.write_text(json.dumps(rec, indent=2, default=str))
    print(f"wrote {path}")


def large_main(args):
    """One 400x400, 3-band blend with 50 sources: time, and memory (estimate and XLA's)."""
    from scarlet_jax.memory import format_bytes
    from scarlet_jax.options import resolve_options
    from scarlet_jax.pipeline import _initialise, _pack
    from scarlet_jax.scheduler import advance, start_state

    blend = sj.datasets.synthetic_blend(3, shape=(400, 400), n_sources=50, n_bands=3,
                                        edge_margin=10)
    item = (blend.observation, blend.centers)
    opts = resolve_options(max_iter=args.iters)
    t0 = time.perf_counter()
    job = _initialise(0, item, opts, 1 << 62)
    host = time.perf_counter() - t0
    plan = sj.plan([item], max_iter=args.iters)
    (bucket,) = plan.buckets
    p = _pack(job, bucket.key, opts).packed
    state = start_state(p.data, p.placement, p.components, opts.params, opts.config)
    lanes = jax.tree.map(lambda x: x[None], (p.data, p.placement, state))
    mem = advance.lower(*lanes, opts.params, opts.config).compile().memory_analysis()
    xla = int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)
    t0 = time.perf_counter()
    res = sj.deblend(*item, max_iter=args.iters)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sj.deblend(*item, max_iter=args.iters)
    warm = time.perf_counter() - t0
    rec = dict(shape=(3, 400, 400), sources=50, components=len(job.components),
               key=str(bucket.key), estimate_bytes=bucket.lane_bytes, xla_bytes=xla,
               n_iter=res.n_iter, first_s=first, warm_s=warm, host_init_s=host)
    print(f"400x400x3, 50 sources ({len(job.components)} components), bucket "
          f"{bucket.key.slots} slots of {bucket.key.box}x{bucket.key.box}: memory estimate "
          f"{format_bytes(bucket.lane_bytes)}, XLA (arguments + outputs + temporaries of one "
          f"block) {format_bytes(xla)}; {res.n_iter} iterations in {warm:.1f} s warm "
          f"({first:.1f} s with compilation); host initialisation {host:.1f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"large_{jax.default_backend()}.json").write_text(json.dumps(rec, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--box", type=int, default=31)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--mixed", action="store_true", help="the mixed, survey-like set")
    parser.add_argument("--n", type=int, default=50, help="blends in the mixed set")
    parser.add_argument("--large", action="store_true", help="one 400x400 blend, 50 sources")
    parser.add_argument("--warm-only", action="store_true",
                        help="mixed set: only the warm figures (no fresh processes)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.large:
        return large_main(args)
    if args.mixed:
        if args.iters == 100:
            args.iters = 300  # the mixed set runs to convergence
        return mixed_main(args)

    backend = jax.default_backend()
    devices = jax.local_devices()
    base = dict(max_iter=args.iters, min_iter=args.iters, e_rel=1e-30, resize=3)
    # fixed shapes and iteration count: boxes stay in their slots (no re-bucketing)
    mono, bare = (fixed_shapes(resolve_options(**base, monotonic=m)) for m in (True, False))
    packed = make_packed(16, seed=0, opts=mono, box=args.box)

    rows = []
    print(f"backend={backend} devices={len(devices)} ({devices[0].device_kind}); "
          f"{SHAPE[0]}x{SHAPE[1]} px, 5 bands, {N_COMPONENTS} components, box {args.box}, "
          f"{args.iters} iterations")
    print(f"{'batch':>6} {'mono s':>9} {'blends/s':>9} {'bare s':>9} {'blends/s':>9} {'ratio':>6}")
    for size in args.sizes:
        batch = stacked(packed, size)
        t_mono = time_batch(batch, mono, args.repeats)
        t_bare = time_batch(batch, bare, args.repeats)
        rows.append(dict(batch=size, seconds_mono=t_mono, blends_per_s_mono=size / t_mono,
                         seconds_bare=t_bare, blends_per_s_bare=size / t_bare))
        print(f"{size:6d} {t_mono:9.3f} {size / t_mono:9.1f} {t_bare:9.3f} {size / t_bare:9.1f} "
              f"{t_mono / t_bare:6.2f}")

    temp_hand, payload = step_memory(packed[0], mono, loss_and_grads)
    temp_auto, _ = step_memory(packed[0], mono, autodiff_gradients)
    memory = dict(payload_bytes=payload, step_temp_bytes_hand=temp_hand,
                  step_temp_bytes_autodiff=temp_auto, ratio_hand=temp_hand / payload,
                  ratio_autodiff=temp_auto / payload)
    print("\nstep memory per blend (temporary bytes of one compiled step):")
    print(f"  data + parameters + optimiser state: {payload / 1e6:8.3f} MB")
    print(f"  hand-written gradient:               {temp_hand / 1e6:8.3f} MB "
          f"({temp_hand / payload:.2f}x)")
    print(f"  jax.grad of the same loss:           {temp_auto / 1e6:8.3f} MB "
          f"({temp_auto / payload:.2f}x)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = dict(backend=backend, device=devices[0].device_kind, n_devices=len(devices),
                  jax=jax.__version__, machine=platform.machine(), shape=SHAPE, bands=5,
                  components=N_COMPONENTS, box=args.box, iterations=args.iters,
                  throughput=rows, memory=memory)
    path = out / f"batch_{backend}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {path}")
    _plot(rows, out / f"batch_{backend}.png", backend)


def _plot(rows, path, backend):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    sizes = [r["batch"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(sizes, [r["blends_per_s_mono"] for r in rows], "o-", label="monotonic")
    ax.loglog(sizes, [r["blends_per_s_bare"] for r in rows], "s--", label="no monotonicity")
    ax.set_xlabel("blends per call")
    ax.set_ylabel("blends / s (100 iterations)")
    ax.set_title(f"scarlet_jax batch throughput ({backend})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
