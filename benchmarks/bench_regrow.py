"""Room at packing time against the room a fit ends up using: per component its initial
box, its slot at packing, its final box (the bounding box of its support when the fit ends)
and whether it regrew; per set the regrows, the layouts (block programs) run, and the slot
pixels against the final box pixels.

Runs the embedded HSC blend (deblend defaults) and the mixed, survey-like set of
``bench_batch.py --mixed`` through the batch pipeline, counting the regrows.

  python benchmarks/bench_regrow.py [--n 50] [--iters 300] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import scarlet_jax as sj
from scarlet_jax import pipeline
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import _members

try:
    from bench_batch import mixed_items
except ImportError:  # run from the repository root
    from benchmarks.bench_batch import mixed_items


def _box(support) -> tuple[tuple[int, int], tuple[int, int]]:
    """(h, w) of the bounding box of a slot's support and (h, w) of the smallest box
    centred on the slot centre (the peak) that holds it ((0, 0) when empty)."""
    rows = np.nonzero(np.any(support > 0, axis=1))[0]
    cols = np.nonzero(np.any(support > 0, axis=0))[0]
    if rows.size == 0:
        return (0, 0), (0, 0)
    cy, cx = support.shape[0] // 2, support.shape[1] // 2
    centred = (2 * max(cy - rows[0], rows[-1] - cy) + 1, 2 * max(cx - cols[0], cols[-1] - cx) + 1)
    return ((int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)),
            tuple(int(v) for v in centred))


def _slots(packed) -> dict:
    """component -> (h, w) of its slot."""
    out = {}
    for (h, w, _), members in zip(packed.key.classes, _members(packed), strict=True):
        for j in members:
            out[j] = (h, w)
    return out


def run_set(name, items, opts):
    """Fit ``items`` with the batch pipeline; per blend the layouts and per component the
    boxes."""
    packs, regrows, finals = {}, {}, {}
    orig_regrow, orig_unpack = pipeline.regrow, pipeline.unpack_result

    def regrow(observation, comps, packed, state, opts_, planner=None):
        key = id(observation)
        regrows.setdefault(key, []).append(int(np.asarray(state.it)))
        new = orig_regrow(observation, comps, packed, state, opts_, planner)
        return new

    def unpack(packed, state, observation, centers, opts_, losses):
        finals[id(observation)] = (packed, state)
        return orig_unpack(packed, state, observation, centers, opts_, losses)

    orig_pack = pipeline._pack

    def pack(job, key, opts_):
        job = orig_pack(job, key, opts_)
        packs[id(job.observation)] = (job.packed, job.components)
        return job

    pipeline.regrow, pipeline.unpack_result, pipeline._pack = regrow, unpack, pack
    stats = pipeline.RunStats()
    try:
        t0 = time.perf_counter()
        pipeline.run(items, opts, stats=stats)
        wall = time.perf_counter() - t0
    finally:
        pipeline.regrow, pipeline.unpack_result, pipeline._pack = (orig_regrow, orig_unpack,
                                                                    orig_pack)
    blends = []
    for b, (obs, _) in enumerate(items):
        packed0, comps = packs[id(obs)]
        packed1, state = finals[id(obs)]
        first, last = _slots(packed0), _slots(packed1)
        state = jax.device_get(state)
        final_box, centred = {}, {}
        for c, members in enumerate(_members(packed1)):
            for s, j in enumerate(members):
                final_box[j], centred[j] = _box(np.asarray(state.support[c][s]))
        rows = []
        for j, comp in enumerate(comps):
            rows.append(dict(component=j, init_box=list(np.shape(comp.morph)),
                             slot=list(first[j]), final_slot=list(last[j]),
                             final_box=list(final_box[j]),
                             centred_box=list(centred[j]), moved=first[j] != last[j]))
        blends.append(dict(blend=b, shape=list(obs.shape), start=packed0.key.classes,
                           final=packed1.key.classes, regrow_its=regrows.get(id(obs), []),
                           start_slot_pixels=int(packed0.key.pixels),
                           final_slot_pixels=int(packed1.key.pixels),
                           final_box_pixels=int(sum(h * w for h, w in final_box.values())),
                           centred_box_pixels=int(sum(h * w for h, w in centred.values())),
                           components=rows))
    layouts = sorted({str(k) for k in stats.buckets})
    summary = dict(set=name, blends=len(items), regrown_blends=sum(bool(b["regrow_its"])
                                                                   for b in blends),
                   regrows=sum(len(b["regrow_its"]) for b in blends),
                   programs=len(layouts), wall_s=round(wall, 1),
                   start_slot_pixels=sum(b["start_slot_pixels"] for b in blends),
                   final_slot_pixels=sum(b["final_slot_pixels"] for b in blends),
                   final_box_pixels=sum(b["final_box_pixels"] for b in blends),
                   centred_box_pixels=sum(b["centred_box_pixels"] for b in blends))
    summary["start_slots_per_final_box"] = round(
        summary["start_slot_pixels"] / summary["final_box_pixels"], 3)
    summary["final_slots_per_final_box"] = round(
        summary["final_slot_pixels"] / summary["final_box_pixels"], 3)
    return summary, blends, layouts


def print_blend(b):
    print(f"blend {b['blend']} {tuple(b['shape'])}: start {b['start']} -> final {b['final']}"
          f" regrows at it {b['regrow_its']}")
    print("   k  init box   slot       final slot  final box  centred")
    for r in b["components"]:
        print(f"  {r['component']:2d}  {str(tuple(r['init_box'])):9s}  "
              f"{str(tuple(r['slot'])):9s}  {str(tuple(r['final_slot'])):10s}  "
              f"{str(tuple(r['final_box'])):9s}  {tuple(r['centred_box'])}"
              f"{'  moved' if r['moved'] else ''}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="blends in the mixed set")
    parser.add_argument("--iters", type=int, default=300, help="max_iter of the mixed set")
    parser.add_argument("--skip-mixed", action="store_true")
    parser.add_argument("--grow-margin", type=int, default=None, help="run option grow_margin")
    parser.add_argument("--verbose", action="store_true", help="every blend's table")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    out = dict(backend=jax.default_backend(), sets=[])
    extra = {} if args.grow_margin is None else dict(grow_margin=args.grow_margin)
    obs, centers = sj.datasets.hsc_cosmos_35()
    summary, blends, layouts = run_set("hsc", [(obs, centers)], resolve_options(**extra))
    print_blend(blends[0])
    out["sets"].append(dict(summary=summary, layouts=layouts, blends=blends))
    if not args.skip_mixed:
        items = mixed_items(args.n)
        summary, blends, layouts = run_set("mixed", items, resolve_options(max_iter=args.iters,
                                                                       **extra))
        for b in blends:
            if args.verbose or b["regrow_its"]:
                print_blend(b)
        out["sets"].append(dict(summary=summary, layouts=layouts, blends=blends))
    print(f"\n{'set':6s} {'blends':>6s} {'regrown':>7s} {'regrows':>7s} {'programs':>8s} "
          f"{'start/final-box':>15s} {'final-slot/final-box':>20s} {'centred/final-box':>17s}")
    for s in out["sets"]:
        m = s["summary"]
        print(f"{m['set']:6s} {m['blends']:6d} {m['regrown_blends']:7d} {m['regrows']:7d} "
              f"{m['programs']:8d} {m['start_slots_per_final_box']:15.3f} "
              f"{m['final_slots_per_final_box']:20.3f} "
              f"{m['centred_box_pixels'] / m['final_box_pixels']:17.3f}")
    path = Path(args.out) / "regrow_room.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
