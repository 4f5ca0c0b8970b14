"""Photometric quality against truth on the shared dev sets (and a synthetic held-out set).

For each (source, band) pair: the relative error ``(F - true) / true`` of the model flux
and of the flux-conserved (re-distributed) flux. Printed and written to JSON: median and
p90 of ``|err|`` overall, by blendedness and by S/N (the bins of DEV_BLENDS.md), the signed
median bias, the colour error (``|log(F_a/F_b) - log(T_a/T_b)|`` for two bands) and the
fraction of catastrophic fluxes (``|err| > 1``). On ``dev`` scarlet lite's numbers from
``dev_blends_lite.npz`` are shown beside ours. A PNG plots the error against blendedness.

Usage::

    PYTHONPATH=. python benchmarks/quality.py --set dev btk --n 10
    PYTHONPATH=. python benchmarks/quality.py --set btk --opt min_iter=50 --tag test
    PYTHONPATH=. python benchmarks/quality.py --set dev --recipe lsst

Sets: ``dev`` (``dev_blends.npz``, centres = ``catalog``), ``btk``
(``btk_dev_blends.npz``, centres = ``centers``, NaN-padded), ``synth`` (the package's own
generator, ``--seed``; a held-out check). Output: ``results/quality_<sets>[_<tag>].json``,
and per set ``quality_<set>[_<tag>].png`` (and ``.npz`` with ``--dump``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

import scarlet_jax as sj
from scarlet_jax.measure import measure

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "..", "shared", "reference")
FILES = {"dev": "dev_blends.npz", "btk": "btk_dev_blends.npz"}
BLEND_BINS = [(0.0, 0.05), (0.05, 0.3), (0.3, 1.0001)]
SNR_BINS = [(0.0, 30.0), (30.0, 100.0), (100.0, 300.0), (300.0, np.inf)]
# colour: (band a, band b) by set (g-i for dev, r-i for btk: u and g are faint there)
COLOUR = {"dev": ("g", "i"), "btk": ("r", "i"), "synth": (0, -1)}


def load_set(name: str, n: int | None, seed: int, start: int = 0):
    """Returns (blends, truth) where blends is a list of (observation, centers) and truth a
    dict of per-pair arrays (true flux (N, S, B), blendedness (N, S), snr (N, S), n_sources,
    bands)."""
    if name == "synth":
        count = n or 50
        blends = sj.datasets.synthetic_blends(count, seed=seed, shape=[(48, 48), (64, 64)])
        smax = max(len(b.centers) for b in blends)
        nb = blends[0].observation.images.shape[0]
        true = np.full((count, smax, nb), np.nan)
        blendedness = np.full((count, smax), np.nan)
        snr = np.full((count, smax), np.nan)
        ns = np.zeros(count, int)
        for i, b in enumerate(blends):
            k = len(b.centers)
            ns[i] = k
            true[i, :k] = np.asarray(b.true_fluxes)
            blendedness[i, :k], snr[i, :k] = _blendedness_snr(b)
        pairs = [(b.observation, np.asarray(b.centers)) for b in blends]
        bands = tuple(blends[0].observation.bands)
        return pairs, dict(true=true, blendedness=blendedness, snr=snr, n_sources=ns,
                           bands=bands)
    path = os.path.join(REF, FILES[name])
    d = np.load(path)
    total = len(d["n_sources"])
    stop = total if n is None else min(total, start + n)
    idx = np.arange(start, stop)
    key = "catalog" if name == "dev" else "centers"
    bands = tuple(str(b) for b in d["bands"])
    pairs = []
    for i in idx:
        k = int(d["n_sources"][i])
        obs = sj.make_observation(d["images"][i], d["variance"][i], d["psfs"][i], bands=bands)
        pairs.append((obs, np.asarray(d[key][i, :k], np.float64)))
    truth = dict(true=d["true_flux"][idx], blendedness=d["blendedness"][idx],
                 snr=d["snr"][idx], n_sources=d["n_sources"][idx], bands=bands, index=idx)
    return pairs, truth


def _blendedness_snr(blend):
    """Blendedness and matched-filter S/N of a synthetic blend from its true models."""
    models = np.asarray(blend.true_images, np.float64)  # (S, B, H, W) convolved
    w = np.asarray(blend.observation.weights, np.float64)
    rms = np.sqrt(1.0 / np.maximum(np.median(w, axis=(1, 2)), 1e-30))
    s_k = np.einsum("sbhw,b->shw", models, 1 / rms**2)
    s_all = s_k.sum(0)
    bl = 1 - np.einsum("shw,shw->s", s_k, s_k) / np.einsum("shw,hw->s", s_k, s_all)
    snr = np.sqrt(np.einsum("sbhw,bhw->s", models**2, w))
    return bl, snr


def run_init(pairs, opts):
    """Fluxes of the initial components only (no fit): seconds instead of minutes, to
    screen a change of the initialisation; the fit's errors are not the same numbers."""
    from scarlet_jax.options import resolve_options
    from scarlet_jax.pipeline import prepare_blend

    resolved = resolve_options(**opts)
    t0 = time.perf_counter()
    fluxes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obs, centers in pairs:
            comps, valid = prepare_blend(obs, centers, resolved)
            flux = np.zeros((len(valid), obs.shape[0]))
            for c in comps:
                flux[c.source] += np.asarray(c.spectrum, np.float64) * float(np.sum(c.morph))
            fluxes.append(flux)
    n = len(pairs)
    return dict(fluxes=fluxes, conserved=[np.full_like(f, np.nan) for f in fluxes],
                chi2=np.full(n, np.nan), iters=np.zeros(n, int),
                flags=[np.zeros(len(f), np.int32) for f in fluxes],
                seconds=time.perf_counter() - t0)


def run(pairs, options, recipe, init_only=False):
    opts = dict(sj.LSST_PIPELINE) if recipe == "lsst" else {}
    opts.update(options)
    if init_only:
        return run_init(pairs, opts)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = sj.deblend_batch(pairs, **opts)
    seconds = time.perf_counter() - t0
    fluxes, conserved, chi2, iters, flags = [], [], [], [], []
    for r in results:
        m = measure(r)
        fluxes.append(m.fluxes)
        conserved.append(m.conserved_fluxes)
        chi2.append(float(np.nansum(m.chi2)) and _blend_chi2(r))
        iters.append(r.n_iter)
        flags.append(getattr(m, "flags", np.zeros(len(m.fluxes), np.int32)))
    return dict(fluxes=fluxes, conserved=conserved, chi2=np.array(chi2), iters=np.array(iters),
                flags=flags, seconds=seconds, results=results)


def _blend_chi2(result):
    obs = result.observation
    w = np.asarray(obs.weights)
    r = np.asarray(obs.images) - np.asarray(result.model)
    return float(np.sum(w * r**2) / max(np.sum(w > 0), 1))


def to_pairs(per_blend, truth):
    """(N, S, B) array padded with NaN from a list of (S_i, B)."""
    true = truth["true"]
    out = np.full(true.shape, np.nan)
    for i, f in enumerate(per_blend):
        out[i, : len(f)] = f
    return out


def stats(err, mask):
    e = err[mask]
    e = e[np.isfinite(e)]
    if e.size == 0:
        return dict(n=0)
    a = np.abs(e)
    return dict(n=int(e.size), median=float(np.median(a)), p90=float(np.percentile(a, 90)),
                bias=float(np.median(e)), catastrophic=float(np.mean(a > 1)))


def summarise(flux, truth, colour_bands):
    """Per-pair error statistics of fluxes (N, S, B) against truth."""
    true = truth["true"]
    valid = np.isfinite(true) & (true > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(valid, (flux - true) / true, np.nan)
    bl = np.broadcast_to(truth["blendedness"][..., None], err.shape)
    snr = np.broadcast_to(truth["snr"][..., None], err.shape)
    rows = {"all": stats(err, valid)}
    for lo, hi in BLEND_BINS:
        rows[f"blendedness [{lo}, {min(hi, 1)})"] = stats(err, valid & (bl >= lo) & (bl < hi))
    for lo, hi in SNR_BINS:
        rows[f"S/N [{lo:g}, {hi:g})"] = stats(err, valid & (snr >= lo) & (snr < hi))
    a, b = colour_bands
    ia = truth["bands"].index(a) if isinstance(a, str) else a
    ib = truth["bands"].index(b) if isinstance(b, str) else b
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = flux[..., ia] / flux[..., ib]
        true_ratio = true[..., ia] / true[..., ib]
        cerr = np.abs(np.log(np.where(ratio > 0, ratio, np.nan)) - np.log(true_ratio))
    ok = np.isfinite(true_ratio)
    ce = cerr[ok]
    lost = ~np.isfinite(ce)
    ce_f = ce[~lost]
    rows["colour"] = dict(
        bands=f"{truth['bands'][ia]}/{truth['bands'][ib]}",
        n=int(ok.sum()),
        median_abs_dlog=float(np.median(ce_f)) if ce_f.size else None,
        p90_abs_dlog=float(np.percentile(ce_f, 90)) if ce_f.size else None,
        undefined=float(lost.mean()) if ce.size else None,
    )
    return rows, err


def lite_rows(truth):
    """scarlet lite's (lsst recipe) statistics on the same dev blends."""
    d = np.load(os.path.join(REF, "dev_blends_lite.npz"))
    idx = truth["index"]
    out = {}
    for key, name in (("lsst_flux", "lite lsst model"),
                      ("lsst_flux_redistributed", "lite lsst conserved")):
        flux = d[key][idx]
        out[name], _ = summarise(flux, truth, COLOUR["dev"])
    return out


def fmt(s):
    if not s or s.get("n", 0) == 0:
        return "-"
    return f"{s['median']:.3f} / {s['p90']:.2f} / {100 * s['catastrophic']:.0f}%"


def print_table(name, columns):
    keys = [k for k in next(iter(columns.values())) if k != "colour"]
    heads = list(columns)
    print(f"\n## {name}: |F - true| / true, median / p90 / share > 1")
    print("| subset | n | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for k in keys:
        n = columns[heads[0]][k].get("n", 0)
        print(f"| {k} | {n} | " + " | ".join(fmt(columns[h][k]) for h in heads) + " |")
    print("| signed median | | " + " | ".join(
        f"{columns[h]['all']['bias']:+.3f}" for h in heads) + " |")
    colour = [columns[h]["colour"] for h in heads]
    print("| colour |dlog| median / p90 | | " + " | ".join(
        f"{c['median_abs_dlog']:.3f} / {c['p90_abs_dlog']:.2f}" for c in colour) + " |")


def plot(path, errs, truth, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bl = np.broadcast_to(truth["blendedness"][..., None], truth["true"].shape)
    for label, err in errs.items():
        ok = np.isfinite(err)
        ax.scatter(bl[ok], np.abs(err[ok]) + 1e-4, s=4, alpha=0.5, label=label)
    ax.set_yscale("log")
    ax.axhline(1, color="k", lw=0.5)
    ax.set_xlabel("blendedness")
    ax.set_ylabel("|F - true| / true")
    ax.set_title(title)
    ax.legend(markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_opts(items):
    out = {}
    for item in items or []:
        key, val = item.split("=", 1)
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", nargs="+", default=["dev", "btk"], choices=["dev", "btk", "synth"])
    p.add_argument("--n", type=int, default=None, help="first N blends of each set")
    p.add_argument("--start", type=int, default=0, help="first blend index (dev/btk)")
    p.add_argument("--seed", type=int, default=2027, help="seed of the synth set")
    p.add_argument("--recipe", choices=["default", "lsst"], default="default")
    p.add_argument("--opt", nargs="*", help="extra deblend options key=value (JSON values)")
    p.add_argument("--tag", default="", help="suffix of the output files")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--dump", action="store_true", help="also save per-pair fluxes (npz)")
    p.add_argument("--init-only", action="store_true",
                   help="measure the initial components' fluxes (no fit): a fast screen")
    args = p.parse_args(argv)
    options = parse_opts(args.opt)
    os.makedirs(args.out, exist_ok=True)
    report = dict(recipe=args.recipe, options=options, n=args.n, start=args.start,
                  init_only=args.init_only, sets={})
    for name in args.set:
        pairs, truth = load_set(name, args.n, args.seed, args.start)
        out = run(pairs, options, args.recipe, args.init_only)
        flux = to_pairs(out["fluxes"], truth)
        cons = to_pairs(out["conserved"], truth)
        cols, errs = {}, {}
        cols["model"], errs["model"] = summarise(flux, truth, COLOUR[name])
        if not args.init_only:
            cols["conserved"], errs["conserved"] = summarise(cons, truth, COLOUR[name])
        if name == "dev":
            cols.update(lite_rows(truth))
        n_flag = int(sum(np.count_nonzero(f) for f in out["flags"]))
        print_table(f"{name} ({len(pairs)} blends, recipe {args.recipe}, {options})", cols)
        print(f"iterations median {np.median(out['iters']):.0f} max {out['iters'].max()}; "
              f"chi2/pixel median {np.median(out['chi2']):.3f}; flagged sources {n_flag}; "
              f"{out['seconds']:.1f} s")
        tag = f"_{args.tag}" if args.tag else ""
        plot(os.path.join(args.out, f"quality_{name}{tag}.png"), errs, truth,
             f"{name}: {args.recipe} {options}")
        report["sets"][name] = dict(
            n_blends=len(pairs), table=cols, iterations_median=float(np.median(out["iters"])),
            chi2_per_pixel_median=float(np.median(out["chi2"])), flagged_sources=n_flag,
            seconds=out["seconds"])
        if args.dump:
            np.savez(os.path.join(args.out, f"quality_{name}{tag}.npz"), flux=flux,
                     conserved=cons, true=truth["true"], blendedness=truth["blendedness"],
                     snr=truth["snr"], iters=out["iters"], chi2=out["chi2"])
    tag = f"_{args.tag}" if args.tag else ""
    # named by its sets too, so one --tag run per set does not overwrite the other's table
    path = os.path.join(args.out, f"quality_{'+'.join(args.set)}{tag}.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
