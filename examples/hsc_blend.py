"""Deblend the embedded HSC COSMOS blend, measure it, plot it, save it and load it again.

A notebook-style script: each ``# %%`` cell runs on its own in Jupyter/VS Code, or run the
whole file with ``python examples/hsc_blend.py`` (about 10 s on a laptop CPU). Pictures and
files go to ``out/hsc_blend/``.
"""

# %% Load the blend: 5 bands (g, r, i, z, y), 58 x 48 pixels, 7 catalog sources.
from pathlib import Path

import numpy as np

import scarlet_jax as sj
from scarlet_jax import display, io, measure

OUT = Path("out") / "hsc_blend"
OUT.mkdir(parents=True, exist_ok=True)

observation, centers = sj.datasets.hsc_cosmos_35()
print(f"bands {observation.bands}, shape {observation.shape}, noise rms {observation.noise_rms}")
print("catalog (y, x):\n", centers)

# %% Deblend with the LSST pipeline's thresholds (scarlet lite's reference recipe).
result = sj.deblend(observation, centers, **sj.LSST_PIPELINE)
print(f"{result.n_components} components, {result.n_iter} iterations, {result.status}, "
      f"chi^2/pixel {result.chi2_per_pixel():.3f}")

# %% Measure: model fluxes, flux-conserved fluxes (scarlet lite's conserve_flux),
# centroids and chi^2 over each source's footprint.
m = measure.measure(result)
for s in range(result.n_sources):
    print(f"source {s}: centroid ({m.centroids[s, 0]:5.1f}, {m.centroids[s, 1]:5.1f})  "
          f"model {np.array2string(m.fluxes[s], precision=1)}  "
          f"conserved {np.array2string(m.conserved_fluxes[s], precision=1)}  "
          f"chi2/pix {m.chi2_per_pixel[s]:.2f}")

# The re-distributed images themselves, one (B, H, W) image per source:
conserved_images, conserved_fluxes = measure.redistribute_flux(result)
print("re-distributed images:", conserved_images.shape)

# %% Pictures (matplotlib, Agg: no window needed).
for fn in (display.plot_data_model_residual, display.plot_scene, display.plot_sources,
           display.plot_loss):
    print("wrote", fn(result, OUT / f"{fn.__name__.removeprefix('plot_')}.png"))

# %% Save and load: one .npz with the observation, the components, the fit history and
# a JSON metadata block with checksums.
path = io.save_result(result, OUT / "result.npz")
again = io.load(path)
assert np.array_equal(again.morphs, result.morphs) and again.options == result.options
print(f"saved and re-loaded {path} ({path.stat().st_size / 1024:.0f} KiB): identical")

# %% Export to scarlet lite's JSON model layout (ScarletModelData) and read it back.
lite = io.export_scarlet_lite(result, OUT / "scarlet_lite.json")
(back,) = io.import_scarlet_lite(lite, observation)
print(f"scarlet lite JSON {lite}: model max difference "
      f"{np.abs(back.model - result.model).max():.2e}")
