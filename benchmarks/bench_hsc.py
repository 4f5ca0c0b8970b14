"""Time the fit of the embedded HSC blend (scarlet lite's pipeline recipe) on the default
backend: the step breakdown (FFTs, box work, proximal operators, the rest), time per
iteration against the blend's own four FFTs, compile time, and the padding of the size
classes (slot pixels against the components' own boxes), also on a mixed synthetic set.

  python benchmarks/bench_hsc.py [--repeats 5] [--out benchmarks/results]
  python benchmarks/bench_hsc.py --compile [--out benchmarks/results]
  python benchmarks/bench_hsc.py --end [--out benchmarks/results]

``--compile`` measures the block program (the scheduler's ``advance_one``) at the blend's
start layout with the demo's options: HLO fusions by kind (from the compiled text), lowering
and compile time (JAX's persistent cache off), the serialised executable's size and load
time, and ms per step against the four FFTs (the step breakdown; ``monotonicity`` is the
part of ``prox`` that the monotonicity operator takes alone, timed on its own).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import scarlet_jax as sj
from scarlet_jax.constraints import make_prox_classes
from scarlet_jax.fft import convolve, convolve_transpose
from scarlet_jax.fit import fit, init_fit_state, make_optimizer, make_step
from scarlet_jax.likelihood import loss_and_grads
from scarlet_jax.monotonicity import make_monotonicity_classes
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend, padding
from scarlet_jax.pipeline import prepare_blend, regrow

REPS = 50  # operations per timed call (a fori_loop inside one jitted call)


def best_time(f, *args, repeats=5):
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def repeated(f):
    """jit(x -> f applied REPS times): per-op time without dispatch overhead."""
    return jax.jit(lambda x: jax.lax.fori_loop(0, REPS, lambda i, x: f(x), x))


def breakdown(packed, opts, repeats):
    """ms per call of the parts of one step, on the packed layout."""
    data, places = packed.data, packed.placement
    config, params = opts.config, opts.params

    def fft4(img):  # the four FFTs of a step: forward and transpose convolution
        return convolve_transpose(convolve(img, data.kernel_fft, data.fft_shape) - img,
                                  data.kernel_fft, data.fft_shape)

    def lg(c):
        _, g = loss_and_grads(c, places, data)
        return jax.tree.map(lambda x, y: x - 1e-12 * y, c, g)

    prox_fn = make_prox_classes(config.constraints, [tuple(p.bounds.shape[-2:]) for p in places])

    def prox(cs):
        return prox_fn(cs, tuple(p.support for p in places), tuple(p.active for p in places),
                       tuple(p.symmetric for p in places), data.noise_rms, params.constraints)

    step = make_step(data, places, params, config)
    state = init_fit_state(packed.components, places, make_optimizer(config, data, params),
                           config)

    def one_step(s):  # keep stepping (never done)
        return step(s)[0]._replace(done=jnp.array(False), it=s.it % config.max_iter + 1)

    shapes = [tuple(p.bounds.shape[-2:]) for p in places]
    mono_fn = make_monotonicity_classes(shapes, config.constraints.fit_radius)
    centres = tuple(jnp.broadcast_to(jnp.array([h // 2, w // 2], jnp.int32), (p.active.shape[0], 2))
                    for (h, w), p in zip(shapes, places, strict=True))

    def mono(cs):  # the monotonicity alone (part of prox when the config has it)
        outs, _ = mono_fn(tuple(c.morphs for c in cs), centres)
        return tuple(c.replace(morphs=m) for c, m in zip(cs, outs, strict=True))

    parts = [("fft4", fft4, data.images), ("loss_and_grads", lg, packed.components),
             ("prox", prox, packed.components), ("step", one_step, state)]
    if config.constraints.monotonic:
        parts.append(("monotonicity", mono, packed.components))
    ms = {}
    for name, f, x in parts:
        ms[name] = 1e3 * best_time(repeated(f), x, repeats=repeats) / REPS
    ms["box_work"] = ms["loss_and_grads"] - ms["fft4"]
    ms["optimiser_and_rest"] = ms["step"] - ms["loss_and_grads"] - ms["prox"]
    return ms


def fit_ms_per_iter(packed, opts, repeats):
    args = (packed.data, packed.placement, packed.components, opts.params, opts.config)
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(fit(*args))
    first = time.perf_counter() - t0
    best = best_time(fit, *args, repeats=repeats)
    return first, 1e3 * best / int(state.it), int(state.it)


def fit_to_end(obs, comps, opts, packed):
    """The packed layout a converging fit ends in (components moved up as they grew: the
    pipeline's regrow loop)."""
    state, _ = fit(packed.data, packed.placement, packed.components, opts.params, opts.config)
    while bool(state.needs_room):
        packed, state = regrow(obs, comps, packed, state, opts)
        state, _ = fit(packed.data, packed.placement, packed.components, opts.params,
                       opts.config, state=state)
    return packed


def mixed_padding(n=40, seed=3):
    """Slot pixels / own-box pixels summed over a mixed synthetic set (sizes, source counts,
    brightness and radii drawn at random)."""
    opts = resolve_options()
    blends = sj.datasets.synthetic_blends(n, seed=seed, shape=[(40, 40), (64, 64), (96, 96),
                                                               (128, 96)],
                                          n_sources=(1, 12), radius_range=(0.8, 8.0),
                                          flux_range=(30.0, 30000.0))
    tot = dict(slot_pixels=0, box_pixels=0, room_pixels=0, single_box_pixels=0)
    worst = 0.0
    for b in blends:
        comps, _ = prepare_blend(b.observation, b.centers, opts)
        packed = pack_blend(b.observation, comps, grow_margin=opts["grow_margin"])
        pad = padding(packed, comps, opts["grow_margin"])
        one = pack_blend(b.observation, comps, box=packed.key.box, grow_margin=opts["grow_margin"])
        for k in ("slot_pixels", "box_pixels", "room_pixels"):
            tot[k] += pad[k]
        tot["single_box_pixels"] += one.key.pixels
        worst = max(worst, pad["slots_per_room"])
    return dict(n_blends=n, **tot, slots_per_box=tot["slot_pixels"] / tot["box_pixels"],
                slots_per_room=tot["slot_pixels"] / tot["room_pixels"],
                single_per_box=tot["single_box_pixels"] / tot["box_pixels"],
                worst_slots_per_room=worst)


def hlo_counts(text: str) -> dict:
    """Counts in a compiled HLO module's text: fusions by kind, all instructions, and the
    loop fusions whose root is a select or an is-finite check (the per-leaf state work)."""
    kinds = re.findall(r"= \S+ fusion\(.*kind=(k\w+)", text)
    counts = {f"fusions_{k[1:].lower()}": kinds.count(k) for k in sorted(set(kinds))}
    counts["fusions"] = len(kinds)
    counts["instructions"] = len(re.findall(r"^\s+(?:ROOT )?%?\S+ = ", text, re.M))
    comps = re.split(r"\n(?=\S)", text)  # computations start at column 0
    roots = []
    for comp in comps:
        if comp.lstrip().startswith(("%fused", "fused")):
            root = re.search(r"ROOT \S+ = \S+ (\w[\w-]*)\(", comp)
            if root:
                roots.append(root.group(1))
    counts["fusion_roots"] = {r: roots.count(r) for r in sorted(set(roots), key=roots.count,
                                                                 reverse=True)[:8]}
    return counts


def breakdown_line(ms: dict) -> str:
    """The step breakdown (ms per part) on one line, with step / four FFTs."""
    return ("  ".join(f"{k} {v:.3f}" for k, v in ms.items())
            + f"  step/fft4 {ms['step'] / ms['fft4']:.2f}")


def write_report(args, stem: str, report: dict) -> None:
    """Write ``report`` to ``<args.out>/<stem>_<backend>.json`` and say where."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}_{jax.default_backend()}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


def compile_report(args):
    """The block program at the HSC start layout: fusions, compile time, executable size
    and load time, step breakdown; printed and written to ``hsc_compile_<backend>.json``."""
    import pickle

    from jax.experimental import serialize_executable

    from scarlet_jax.scheduler import advance_one, start_state

    jax.config.update("jax_enable_compilation_cache", False)  # time real compiles
    obs, centers = sj.datasets.hsc_cosmos_35()
    opts = resolve_options()  # the demo's options
    comps, _ = prepare_blend(obs, centers, opts)
    packed = pack_blend(obs, comps, grow_margin=opts["grow_margin"])
    call = (packed.data, packed.placement, packed.components, opts.params)
    state = start_state(*call, config=opts.config)
    dyn = (packed.data, packed.placement, state, opts.params)
    t0 = time.perf_counter()
    lowered = advance_one.lower(*dyn, config=opts.config)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    counts = hlo_counts(compiled.as_text())
    blob = pickle.dumps(serialize_executable.serialize(compiled))
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        serialize_executable.deserialize_and_load(*pickle.loads(blob))
        loads.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*dyn))
    first_block_s = time.perf_counter() - t0
    o = resolve_options(max_iter=100, min_iter=100, e_rel=1e-30)
    o = dataclasses.replace(o, config=dataclasses.replace(o.config, rebucket=False))
    ms = breakdown(packed, o, args.repeats)
    report = dict(backend=jax.default_backend(), jax=jax.__version__,
                  classes=str(packed.key.classes), lower_s=lower_s, compile_s=compile_s,
                  executable_bytes=len(blob), load_s=min(loads), first_block_s=first_block_s,
                  hlo=counts, breakdown_ms=ms, step_over_fft4=ms["step"] / ms["fft4"])
    print(f"backend={jax.default_backend()}  hsc_cosmos_35 start layout {packed.key.classes}")
    print(f"  block program (advance_one, block={opts.config.block}):")
    print(f"    fusions {counts['fusions']:5d}  ("
          + ", ".join(f"{k[8:]} {v}" for k, v in counts.items()
                      if k.startswith("fusions_")) + ")")
    print(f"    HLO instructions {counts['instructions']:5d}")
    print(f"    fusion roots (most common): {counts['fusion_roots']}")
    print(f"    lower {lower_s:6.2f} s   compile {compile_s:6.2f} s")
    print(f"    executable {len(blob) / 2**20:6.2f} MiB   load {min(loads):6.3f} s")
    print("  step breakdown, ms: " + breakdown_line(ms))
    write_report(args, "hsc_compile", report)


def end_report(args):
    """ms per step at the layout the demo's fit (default options) ends in, and the
    regrows it took to get there; printed and written to ``hsc_end_<backend>.json``."""
    obs, centers = sj.datasets.hsc_cosmos_35()
    opts = resolve_options()  # the demo's options
    comps, _ = prepare_blend(obs, centers, opts)
    start = pack_blend(obs, comps, grow_margin=opts["grow_margin"])
    end = fit_to_end(obs, comps, opts, start)
    o = resolve_options(max_iter=100, min_iter=100, e_rel=1e-30)
    o = dataclasses.replace(o, config=dataclasses.replace(o.config, rebucket=False))
    ms = breakdown(end, o, args.repeats)
    report = dict(backend=jax.default_backend(), start=str(start.key.classes),
                  end=str(end.key.classes), start_pixels=start.key.pixels,
                  end_pixels=end.key.pixels, breakdown_ms=ms,
                  step_over_fft4=ms["step"] / ms["fft4"])
    print(f"backend={jax.default_backend()}  hsc_cosmos_35, demo options")
    print(f"  start layout {start.key.classes} ({start.key.pixels} slot px)")
    print(f"  end layout   {end.key.classes} ({end.key.pixels} slot px)")
    print("  step breakdown at the end layout, ms: " + breakdown_line(ms))
    write_report(args, "hsc_end", report)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--compile", action="store_true",
                        help="measure the block program (fusions, compile, size) only")
    parser.add_argument("--end", action="store_true",
                        help="ms per step at the layout the demo's fit ends in only")
    args = parser.parse_args()
    if args.compile:
        compile_report(args)
        return
    if args.end:
        end_report(args)
        return
    obs, centers = sj.datasets.hsc_cosmos_35()
    print(f"backend={jax.default_backend()}  hsc_cosmos_35 (5x58x48, 7 sources)")
    t0 = time.perf_counter()
    base = resolve_options(**sj.LSST_PIPELINE)
    comps, centers = prepare_blend(obs, centers, base)
    init_s = time.perf_counter() - t0
    margin = base["grow_margin"]
    start = pack_blend(obs, comps, grow_margin=margin)
    # the layout the converging fit ends in (components moved up as they grew)
    end = fit_to_end(obs, comps, base, start)
    single = pack_blend(obs, comps, box=end.key.box, grow_margin=margin)
    layouts = {"classes at start": start, "classes at the end": end,
               f"one class ({end.key.box}x{end.key.box})": single}

    pad = {name: padding(p, comps, margin) for name, p in layouts.items()}
    print("\npadding (slot pixels / the components' own boxes; / own boxes + grow margin):")
    for name, p in layouts.items():
        d = pad[name]
        print(f"  {name:<28} {str(p.key.classes):<34} {d['slot_pixels']:6d} px  "
              f"{d['slots_per_box']:.2f}x  {d['slots_per_room']:.2f}x")
    mixed = mixed_padding()
    print(f"  mixed synthetic set ({mixed['n_blends']} blends): classes "
          f"{mixed['slots_per_box']:.2f}x / {mixed['slots_per_room']:.2f}x "
          f"(worst blend {mixed['worst_slots_per_room']:.2f}x); one class "
          f"{mixed['single_per_box']:.2f}x")

    hundred = dict(max_iter=100, min_iter=100, e_rel=1e-30)
    rows = []
    print(f"\n{'layout':<28} {'variant':<26} {'iters':>5} {'compile+run s':>13} "
          f"{'ms/iter':>8} {'/ 4 FFTs':>8}")
    parts = {}
    for name, packed in layouts.items():
        o = resolve_options(**{**sj.LSST_PIPELINE, **hundred})
        # time one program: boxes stay in their class (no moving up while timing)
        o = dataclasses.replace(o, config=dataclasses.replace(o.config, rebucket=False))
        ms = breakdown(packed, o, args.repeats)
        parts[name] = ms
        for variant, extra in [("100 iterations", {}),
                               ("100 it., no operators", dict(monotonic=False, bg_thresh=0.0))]:
            ov = resolve_options(**{**sj.LSST_PIPELINE, **hundred, **extra})
            ov = dataclasses.replace(ov, config=dataclasses.replace(ov.config, rebucket=False))
            first, per_iter, iters = fit_ms_per_iter(packed, ov, args.repeats)
            rows.append(dict(layout=name, classes=str(packed.key.classes), variant=variant,
                             iterations=iters, first_call_s=first, ms_per_iter=per_iter,
                             per_iter_over_fft4=per_iter / ms["fft4"]))
            print(f"{name:<28} {variant:<26} {iters:5d} {first:13.2f} {per_iter:8.3f} "
                  f"{per_iter / ms['fft4']:8.2f}")
    print(f"\nstep breakdown, ms per call ({REPS} calls in one jitted loop, best of "
          f"{args.repeats}):")
    cols = ["fft4", "box_work", "prox", "optimiser_and_rest", "step"]
    print(f"  {'layout':<28} " + " ".join(f"{c:>18}" for c in cols) + f" {'step / fft4':>12}")
    for name, ms in parts.items():
        print(f"  {name:<28} " + " ".join(f"{ms[c]:18.3f}" for c in cols)
              + f" {ms['step'] / ms['fft4']:12.2f}")
    print(f"\ninitialisation (host): {1e3 * init_s:.1f} ms")
    write_report(args, "hsc", dict(
        backend=jax.default_backend(), jax=jax.__version__, init_ms=1e3 * init_s,
        padding={k: dict(v, classes=str(layouts[k].key.classes)) for k, v in pad.items()},
        mixed_padding=mixed, breakdown_ms=parts, rows=rows))


if __name__ == "__main__":
    main()
