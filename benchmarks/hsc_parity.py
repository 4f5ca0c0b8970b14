"""HSC fit figures to compare two versions of the package: the default fit's chi^2/pixel and
iterations, the ``LSST_PIPELINE`` fit against scarlet lite's reference, and (with
``--against``) the relative L1 difference of the models and fluxes to an earlier run's file.

  PYTHONPATH=<tree> python benchmarks/hsc_parity.py --tag after [--against before.npz]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import scarlet_jax as sj

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="run")
    parser.add_argument("--against", default=None, help="an earlier run's .npz")
    parser.add_argument("--reference", default=str(REFERENCE / "hsc_cosmos_35_lite.npz"))
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    ref = dict(np.load(args.reference))
    obs, centers = sj.datasets.hsc_cosmos_35()
    default = sj.deblend(obs, centers)
    lsst = sj.deblend(obs, centers, **sj.LSST_PIPELINE)
    lite_chi2 = float(ref["final_chi2_per_pixel"])
    lite_model = ref["final_model_convolved"]
    brightest = np.argsort(ref["final_source_fluxes"].sum(1))[::-1][:4]
    report = dict(
        default_chi2=default.chi2_per_pixel(), default_iterations=int(default.n_iter),
        lsst_chi2=lsst.chi2_per_pixel(), lite_chi2=lite_chi2,
        lsst_iterations=int(lsst.n_iter),
        lsst_model_l1_to_lite=float(np.abs(lsst.model - lite_model).sum()
                                    / np.abs(lite_model).sum()),
        lsst_flux_to_lite=float(np.abs(lsst.source_fluxes[brightest]
                                       / ref["final_source_fluxes"][brightest] - 1).max()))
    arrays = dict(default_model=default.model, lsst_model=lsst.model,
                  default_flux=default.source_fluxes, lsst_flux=lsst.source_fluxes)
    if args.against:
        old = np.load(args.against)
        for k, v in arrays.items():
            report[f"{k}_l1_to_earlier"] = float(np.abs(v - old[k]).sum() / np.abs(old[k]).sum())
    for k, v in report.items():
        print(f"  {k:<32} {v:.6g}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"hsc_parity_{args.tag}.npz", **arrays)
    (out / f"hsc_parity_{args.tag}.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / f'hsc_parity_{args.tag}.json'}")


if __name__ == "__main__":
    main()
