"""Compare the forms of box insertion (sum of K boxes into a canvas) and extraction (read K
boxes out of it) that XLA offers, on HSC-like sizes: per-pixel scatter/gather (advanced
indexing), windowed scatter-add / gather (``vmap`` of ``dynamic_update_slice`` /
``dynamic_slice``), and a ``fori_loop`` of ``dynamic_update_slice`` / ``dynamic_slice``.

  python benchmarks/bench_insert.py [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def pixel_insert(boxes, origins, canvas_shape):
    k, b, h, w = boxes.shape
    rows = origins[:, 0, None, None] + jnp.arange(h)[None, :, None]
    cols = origins[:, 1, None, None] + jnp.arange(w)[None, None, :]
    return jnp.zeros((b,) + canvas_shape, boxes.dtype).at[:, rows, cols].add(
        jnp.moveaxis(boxes, 1, 0))


def pixel_extract(canvas, origins, box_shape):
    h, w = box_shape
    rows = origins[:, 0, None, None] + jnp.arange(h)[None, :, None]
    cols = origins[:, 1, None, None] + jnp.arange(w)[None, None, :]
    return jnp.moveaxis(canvas[:, rows, cols], 0, 1)


_SCATTER = lax.ScatterDimensionNumbers(update_window_dims=(1, 2, 3), inserted_window_dims=(),
                                       scatter_dims_to_operand_dims=(1, 2))


def window_insert(boxes, origins, canvas_shape):
    k, b, h, w = boxes.shape
    canvas = jnp.zeros((b,) + canvas_shape, boxes.dtype)
    return lax.scatter_add(canvas, origins, boxes, _SCATTER, indices_are_sorted=False,
                           unique_indices=False, mode="promise_in_bounds")


def window_extract(canvas, origins, box_shape):
    z = jnp.zeros((), origins.dtype)
    return jax.vmap(lambda o: lax.dynamic_slice(canvas, (z, o[0], o[1]),
                                                (canvas.shape[0],) + box_shape))(origins)


def loop_insert(boxes, origins, canvas_shape):
    k, b, h, w = boxes.shape
    z = jnp.zeros((), origins.dtype)

    def body(i, canvas):
        start = (z, origins[i, 0], origins[i, 1])
        cur = lax.dynamic_slice(canvas, start, (b, h, w))
        return lax.dynamic_update_slice(canvas, cur + boxes[i], start)

    return lax.fori_loop(0, k, body, jnp.zeros((b,) + canvas_shape, boxes.dtype))


def loop_extract(canvas, origins, box_shape):
    k = origins.shape[0]
    b = canvas.shape[0]
    z = jnp.zeros((), origins.dtype)

    def body(i, out):
        box = lax.dynamic_slice(canvas, (z, origins[i, 0], origins[i, 1]), (b,) + box_shape)
        return lax.dynamic_update_index_in_dim(out, box, i, 0)

    return lax.fori_loop(0, k, body, jnp.zeros((k, b) + box_shape, canvas.dtype))


def unrolled_insert(boxes, origins, canvas_shape):
    k, b, h, w = boxes.shape
    z = jnp.zeros((), origins.dtype)
    canvas = jnp.zeros((b,) + canvas_shape, boxes.dtype)
    for i in range(k):
        start = (z, origins[i, 0], origins[i, 1])
        cur = lax.dynamic_slice(canvas, start, (b, h, w))
        canvas = lax.dynamic_update_slice(canvas, cur + boxes[i], start)
    return canvas


FORMS = {
    "per-pixel scatter/gather (before)": (pixel_insert, pixel_extract),
    "windowed scatter-add / vmap(dynamic_slice)": (window_insert, window_extract),
    "fori_loop dynamic_update_slice / dynamic_slice": (loop_insert, loop_extract),
    "unrolled dynamic_update_slice / vmap(dynamic_slice)": (unrolled_insert, window_extract),
}


def timed(f, *args, repeats=30, inner=20):
    g = jax.jit(lambda *a: lax.fori_loop(0, inner, lambda i, acc: acc + f(*a), f(*a)))
    jax.block_until_ready(g(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(g(*args))
        best = min(best, time.perf_counter() - t0)
    return best / (inner + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    b, canvas = 5, (58 + 60, 48 + 60)
    cases = [(4, 53), (6, 39), (12, 61), (32, 21)]
    rows = []
    print(f"backend={jax.default_backend()}  canvas {b}x{canvas}")
    print(f"{'form':<52} {'K x box':>9} {'insert us':>10} {'extract us':>10} {'per px ns':>9}")
    for k, side in cases:
        boxes = jnp.asarray(rng.normal(size=(k, b, side, side)), jnp.float32)
        origins = jnp.asarray(rng.integers(0, [canvas[0] - side, canvas[1] - side], (k, 2)),
                              jnp.int32)
        image = jnp.asarray(rng.normal(size=(b,) + canvas), jnp.float32)
        ref_i = pixel_insert(boxes, origins, canvas)
        ref_e = pixel_extract(image, origins, (side, side))
        for name, (ins, ext) in FORMS.items():
            np.testing.assert_allclose(ins(boxes, origins, canvas), ref_i, atol=1e-4)
            np.testing.assert_allclose(ext(image, origins, (side, side)), ref_e)
            ti = timed(lambda x, o, ins=ins: ins(x, o, canvas), boxes, origins)
            # every extracted pixel enters the sum (no dead code for XLA to drop)
            te = timed(lambda x, o, ext=ext, s=side: x + 1e-9 * ext(x, o, (s, s)).sum(),
                       image, origins)
            px = k * b * side * side
            rows.append(dict(form=name, k=k, box=side, insert_us=1e6 * ti, extract_us=1e6 * te,
                             ns_per_px=1e9 * (ti + te) / px))
            print(f"{name:<52} {k:>3}x{side:<5} {1e6 * ti:10.1f} {1e6 * te:10.1f} "
                  f"{1e9 * (ti + te) / px:9.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"insert_{jax.default_backend()}.json"
    path.write_text(json.dumps(dict(backend=jax.default_backend(), jax=jax.__version__,
                                    rows=rows), indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
