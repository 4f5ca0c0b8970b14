"""Time the fit of the embedded HSC blend (scarlet lite's pipeline recipe) on the default
backend: compile time, time per fit and per iteration, and the same for the operators off.

  python benchmarks/bench_hsc.py [--repeats 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax

import scarlet_jax as sj
from scarlet_jax.fit import fit
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend
from scarlet_jax.pipeline import prepare_blend


def run(opts, packed, repeats):
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(fit(packed.data, packed.placement, packed.components,
                                      opts.params, opts.config))
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fit(packed.data, packed.placement, packed.components,
                                  opts.params, opts.config))
        best = min(best, time.perf_counter() - t0)
    return first, best, int(state.it)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    obs, centers = sj.datasets.hsc_cosmos_35()
    rows = []
    print(f"backend={jax.default_backend()}  hsc_cosmos_35 (5x58x48, 7 sources)")
    print(f"{'variant':<34} {'iters':>5} {'compile+run s':>13} {'fit s':>8} {'ms/iter':>8}")
    t0 = time.perf_counter()
    opts = resolve_options(**sj.LSST_PIPELINE)
    comps, centers = prepare_blend(obs, centers, opts)
    init_s = time.perf_counter() - t0
    packed = pack_blend(obs, comps, grow_margin=opts["grow_margin"])
    for name, extra in [("lite pipeline recipe (converging)", {}),
                        ("100 iterations, monotonic", dict(max_iter=100, min_iter=100,
                                                           e_rel=1e-30)),
                        ("100 iterations, no monotonicity", dict(max_iter=100, min_iter=100,
                                                                 e_rel=1e-30, monotonic=False)),
                        ("100 iterations, no operators", dict(max_iter=100, min_iter=100,
                                                              e_rel=1e-30, monotonic=False,
                                                              bg_thresh=0.0))]:
        o = resolve_options(**{**sj.LSST_PIPELINE, **extra})
        # time one program: boxes stay in their first slot bucket (no re-bucketing)
        o = dataclasses.replace(o, config=dataclasses.replace(o.config, rebucket=False))
        first, best, iters = run(o, packed, args.repeats)
        rows.append(dict(variant=name, iterations=iters, first_call_s=first, fit_s=best,
                         ms_per_iter=1e3 * best / iters))
        print(f"{name:<34} {iters:5d} {first:13.2f} {best:8.4f} {1e3 * best / iters:8.2f}")
    print(f"initialisation (host): {1e3 * init_s:.1f} ms; bucket {packed.key}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"hsc_{jax.default_backend()}.json"
    path.write_text(json.dumps(dict(backend=jax.default_backend(), jax=jax.__version__,
                                    init_ms=1e3 * init_s, bucket=str(packed.key), rows=rows),
                               indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
