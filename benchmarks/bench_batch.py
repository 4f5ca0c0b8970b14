"""Batch throughput and step memory of the fit.

Blends/s against batch size for 64x64, 5-band synthetic blends with 8 components at a fixed
100 iterations (monotonicity on; and a bare loop without monotonicity for comparison), on
the default JAX backend. Memory: the compiled step's temporary bytes per blend
(``jit(step).lower(...).compile().memory_analysis()``) against the bytes of one blend's
data + parameters + optimiser state, for the hand-written gradient and for ``jax.grad`` of
the same loss.

  python benchmarks/bench_batch.py                       # CPU: batch sizes 1..64
  python benchmarks/bench_batch.py --sizes 1 8 64 256 1024 --out benchmarks/results
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
from scarlet_jax.batch import fit_batch, stack_trees
from scarlet_jax.deblend import prepare_blend
from scarlet_jax.fft import convolve
from scarlet_jax.fit import init_fit_state, make_optimizer, make_step
from scarlet_jax.likelihood import loss_and_grads
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend
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
    assert int(out.it.min()) == opts.config.max_iter
    return best


def nbytes(tree) -> int:
    return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def step_memory(p, opts, gradient_fn):
    optimizer = make_optimizer(opts.config, p.data, opts.params)
    state = init_fit_state(p.components, p.placement, optimizer, opts.config.max_iter)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--box", type=int, default=31)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

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
