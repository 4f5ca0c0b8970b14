"""Time the proximal operators per box, single and batched, on the default JAX backend.

Monotonicity (the box-centred ``make_monotonicity`` the fit uses, and the general
``monotonicity``) on ``--box`` x ``--box`` boxes, one at a time and ``jax.vmap``-ed over
``--n`` boxes; the uncentred symmetry for comparison; and, for context, one fit-like reference
op: a (5, 64, 64) FFT convolution forward + transpose (what one fit iteration costs at least).
Then the number the issue's target is about: what the operators add to a fit iteration, for
single synthetic blends in several buckets (canvas, slot box, slots) from small to a large
galaxy box, timed as whole fits of 100 iterations (best of 10) with the operator sets of
``FIT_VARIANTS``. Compile time is excluded; every other timing is the best of ``--repeats``
runs after ``block_until_ready``.

    python benchmarks/bench_operators.py [--n 1000] [--box 41] [--repeats 20]
        [--out benchmarks/results/operators_<backend>.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import scarlet_jax as sj
from scarlet_jax import monotonicity, prox
from scarlet_jax.fit import fit
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend
from scarlet_jax.pipeline import prepare_blend

#: (canvas side, slot box, slots) of the single-blend fits; the last is a large galaxy
FIT_BUCKETS = [(64, 31, 8), (96, 61, 12), (128, 101, 4), (192, 161, 4)]


def best_time(fn, *args, repeats: int) -> tuple[float, float]:
    """(compile + first run, best of ``repeats``) in seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return first, best


def make_boxes(n: int, box: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n noisy galaxy-like morphs (n, box, box) float32 peaked near the centre, and centres."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:box, :box] - box // 2
    sigma = rng.uniform(2.0, box / 6, size=(n, 1, 1))
    q = rng.uniform(0.4, 1.0, size=(n, 1, 1))
    morphs = np.exp(-0.5 * (yy**2 + (q * xx) ** 2) / sigma**2)  # (n, box, box)
    morphs = morphs + 0.05 * rng.normal(size=morphs.shape)
    centers = np.full((n, 2), box // 2, np.int32)
    return morphs.astype(np.float32), centers


def fft_reference(repeats: int) -> dict:
    """A (5, 64, 64) convolution forward + transpose with a fixed kernel FFT (rfft2 grids)."""
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.normal(size=(5, 64, 64)).astype(np.float32))
    fft_shape = (128, 128)
    kernel = rng.normal(size=(5, 43, 43)).astype(np.float32)
    kernel_fft = jnp.fft.rfft2(jnp.asarray(kernel), s=fft_shape)

    @jax.jit
    def forward_transpose(x):
        y = jnp.fft.irfft2(jnp.fft.rfft2(x, s=fft_shape) * kernel_fft, s=fft_shape)[..., :64, :64]
        z = jnp.fft.rfft2(y, s=fft_shape) * jnp.conj(kernel_fft)
        return jnp.fft.irfft2(z, s=fft_shape)[..., :64, :64]

    compile_s, best = best_time(forward_transpose, images, repeats=repeats)
    return {
        "op": "fft_convolve_fwd_T (5,64,64), fft (128,128)",
        "seconds": best,
        "compile_s": compile_s,
    }


#: operator sets timed in a fit: none (positivity and normalisation only), the background
#: threshold alone, the default chain (monotonicity + background threshold), and everything
#: (plus symmetry and L1 sparsity)
FIT_VARIANTS = {
    "none": dict(monotonic=False, bg_thresh=0.0),
    "bg_threshold": dict(monotonic=False),
    "default": dict(),
    "all": dict(symmetric=True, sparsity="l1", sparsity_thresh=0.1),
}


def fit_overhead(buckets, iters: int, repeats: int) -> list[dict]:
    """Per-iteration time of a single-blend fit for each operator set, per bucket."""
    rows = []
    for side, box, slots in buckets:
        blend = sj.datasets.synthetic_blend(
            seed=3, shape=(side, side), n_sources=(slots, slots), radius_range=(1.0, box / 10)
        )
        row = {"canvas": side, "box": box, "slots": slots, "iterations": iters}
        for name, options in FIT_VARIANTS.items():
            opts = resolve_options(max_iter=iters, min_iter=iters, e_rel=1e-30, **options)
            opts = dataclasses.replace(
                opts, config=dataclasses.replace(opts.config, rebucket=False)
            )
            comps, _ = prepare_blend(blend.observation, blend.centers, opts)
            packed = pack_blend(blend.observation, comps[:slots], box=box, slots=slots)
            args = (packed.data, packed.placement, packed.components, opts.params, opts.config)
            _, best = best_time(fit, *args, repeats=repeats)
            row[f"s_per_iter_{name}"] = best / iters
        t = {name: row[f"s_per_iter_{name}"] for name in FIT_VARIANTS}
        row["added_by_monotonicity"] = t["default"] / t["bg_threshold"] - 1
        row["added_by_default_chain"] = t["default"] / t["none"] - 1
        row["added_by_all"] = t["all"] / t["none"] - 1
        rows.append(row)
    return rows


def run(n: int, box: int, repeats: int) -> dict:
    morphs, centers = make_boxes(n, box)
    morphs_d, centers_d = jnp.asarray(morphs), jnp.asarray(centers)
    one, one_c = morphs_d[0], centers_d[0]
    rows = []

    mono = monotonicity.make_monotonicity((box, box), fit_radius=1)
    cases = [
        ("make_monotonicity", jax.jit(mono), jax.jit(jax.vmap(mono))),
        (
            "monotonicity (any peak)",
            jax.jit(monotonicity.monotonicity),
            jax.jit(jax.vmap(monotonicity.monotonicity)),
        ),
        (
            "uncentered_symmetry",
            jax.jit(prox.uncentered_symmetry),
            jax.jit(jax.vmap(prox.uncentered_symmetry)),
        ),
    ]
    for name, single, batched in cases:
        c1, t1 = best_time(single, one, one_c, repeats=repeats)
        rows.append({"op": name, "batch": 1, "seconds": t1, "per_box_s": t1, "compile_s": c1})
        for k in sorted({16, n}):
            ck, tk = best_time(batched, morphs_d[:k], centers_d[:k], repeats=max(3, repeats // 4))
            rows.append(
                {"op": name, "batch": k, "seconds": tk, "per_box_s": tk / k, "compile_s": ck}
            )
    fft = fft_reference(repeats)
    overhead = fit_overhead(FIT_BUCKETS, iters=100, repeats=10)
    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "machine": platform.machine(),
        "box": box,
        "n": n,
        "repeats": repeats,
        "ops": rows,
        "reference": fft,
        "fit_overhead": overhead,
    }


def print_table(res: dict) -> None:
    print(
        f"backend {res['backend']} ({res['device']}), jax {res['jax']}, box {res['box']}x"
        f"{res['box']}, best of {res['repeats']}"
    )
    print(f"{'op':26s} {'batch':>6s} {'total':>12s} {'per box':>12s} {'compile':>9s}")
    for r in res["ops"]:
        print(
            f"{r['op']:26s} {r['batch']:6d} {r['seconds'] * 1e6:10.1f}us "
            f"{r['per_box_s'] * 1e6:10.2f}us {r['compile_s']:8.2f}s"
        )
    ref = res["reference"]
    print(f"reference: {ref['op']}: {ref['seconds'] * 1e6:.1f}us")
    mono16 = next(r for r in res["ops"] if r["op"] == "make_monotonicity" and r["batch"] == 16)
    print(
        f"make_monotonicity, 16 boxes in one call: {mono16['seconds'] * 1e6:.1f}us = "
        f"{mono16['seconds'] / ref['seconds']:.2f}x the reference op"
    )
    print("\noperators in a fit iteration (one synthetic blend, 5 bands, 100 iterations; ms per "
          "iteration; added: % over 'none', monotonicity: % over 'bg')")
    print(f"{'canvas':>6s} {'box':>4s} {'slots':>5s} {'none':>7s} {'bg':>7s} {'default':>7s} "
          f"{'all':>7s} {'mono':>6s} {'default':>8s} {'all':>6s}")
    for r in res["fit_overhead"]:
        print(f"{r['canvas']:6d} {r['box']:4d} {r['slots']:5d} "
              + " ".join(f"{r['s_per_iter_' + v] * 1e3:7.3f}" for v in FIT_VARIANTS)
              + f" {100 * r['added_by_monotonicity']:5.0f}%"
              f" {100 * r['added_by_default_chain']:7.0f}% {100 * r['added_by_all']:5.0f}%")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="boxes in the batched run")
    parser.add_argument("--box", type=int, default=41, help="box side (odd)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs; the best counts")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default benchmarks/results/operators_<backend>.json)",
    )
    args = parser.parse_args(argv)
    res = run(args.n, args.box, args.repeats)
    print_table(res)
    out = args.out or Path(__file__).parent / "results" / f"operators_{res['backend']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
