"""Example data: the embedded HSC blend and synthetic scenes."""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..observation import Observation, make_observation
from .synthetic import SyntheticBlend, synthetic_blend, synthetic_blends

__all__ = [
    "SyntheticBlend",
    "hsc_cosmos_35",
    "load_hsc_cosmos_35_arrays",
    "synthetic_blend",
    "synthetic_blends",
]


def load_hsc_cosmos_35_arrays() -> dict[str, np.ndarray]:
    """The raw arrays of the embedded 5-band HSC COSMOS blend (images, variance, mask,
    psfs, filters, catalog)."""
    path = resources.files("scarlet_jax") / "data" / "hsc_cosmos_35.npz"
    with resources.as_file(path) as p, np.load(p) as data:
        return {k: data[k] for k in data.files}


def hsc_cosmos_35() -> tuple[Observation, np.ndarray]:
    """The embedded 5-band (g, r, i, z, y) HSC blend of 58x48 pixels with 7 catalog peaks.

    The file's ``mask`` plane is the HSC bit mask (DETECTED and friends set on most
    pixels), not a bad-pixel mask, so it is not applied, as in scarlet lite's reference
    run. Weights are 1/variance.

    Returns:
      ``(observation, centers)`` with centers (7, 2) float32 (y, x).
    """
    arrays = load_hsc_cosmos_35_arrays()
    obs = make_observation(
        arrays["images"],
        arrays["variance"],
        arrays["psfs"],
        bands=[str(b) for b in arrays["filters"]],
    )
    cat = arrays["catalog"]
    centers = np.stack([cat["y"], cat["x"]], axis=1).astype(np.float32)
    return obs, centers
