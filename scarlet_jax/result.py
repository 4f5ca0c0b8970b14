"""What a deblend returns: the fitted components, unpadded, with the fit history."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .components import Components, FitData, Placement
from .fft import fft_shape_for, kernel_to_fft
from .likelihood import render
from .observation import Observation

__all__ = ["DeblendResult"]


@dataclasses.dataclass(frozen=True, repr=False)
class DeblendResult:
    """The result of deblending one blend (host arrays, unpadded).

    Attributes:
      observation: the observation that was fitted.
      centers: (S, 2) float32 (y, x) source centers.
      spectra: (K, B) float32 per-component spectra.
      morphs: (K, h, w) float32 per-component morphologies in slot boxes centred on peaks
        (0 outside the component's own box).
      origins: (K, 2) int32 top-left (y, x) of each slot box in image coordinates.
      support: (K, h, w) bool, the component's own (scarlet lite) box inside its slot box.
      peaks: (K, 2) int32 (y, x) peak pixel per component.
      component_source: (K,) int32 source index of each component.
      loss: (n_iter,) float32 loss ``0.5 * sum(W * (D - P(M))**2)`` per iteration.
      n_iter: iterations run.
      converged: the relative loss change fell below ``e_rel``.
      diverged: the fit went non-finite (reverted to the last finite state) or blew up.
      options: the options of the run.
      error: for a blend of a batch that could not be fitted (bad input), the reason; its
        arrays are then empty and ``status`` is "failed".
    """

    observation: Observation
    centers: np.ndarray
    spectra: np.ndarray
    morphs: np.ndarray
    origins: np.ndarray
    support: np.ndarray
    peaks: np.ndarray
    component_source: np.ndarray
    loss: np.ndarray
    n_iter: int
    converged: bool
    diverged: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None

    def __repr__(self) -> str:
        """One line, e.g. ``DeblendResult(7 sources, 10 components, 5 bands, converged
        after 47 it, chi2/px 1.23)``; the arrays are attributes."""
        n_bands = len(self.observation.bands) if hasattr(self.observation, "bands") else "?"
        head = (f"{self.n_sources} sources, {self.n_components} components, {n_bands} bands")
        if self.error is not None:
            return f"DeblendResult({head}, failed: {self.error})"
        try:
            chi2 = f", chi2/px {self.chi2_per_pixel():.3g}"
        except Exception:  # an observation edited beyond rendering: keep repr working
            chi2 = ""
        return f"DeblendResult({head}, {self.status} after {self.n_iter} it{chi2})"

    @property
    def n_sources(self) -> int:
        return int(self.centers.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.spectra.shape[0])

    @property
    def status(self) -> str:
        """"converged", "diverged", "max_iter" or "failed" (see ``error``)."""
        if self.error is not None:
            return "failed"
        if self.diverged:
            return "diverged"
        return "converged" if self.converged else "max_iter"

    @property
    def components(self):
        """The fitted :class:`~scarlet_jax.components.Components` pytree."""
        return Components(spectra=jnp.asarray(self.spectra), morphs=jnp.asarray(self.morphs))

    def component_boxes(self) -> np.ndarray:
        """(K, 4) int (y0, x0, y1, x1) of each component's own box in image coordinates
        (exclusive upper ends)."""
        boxes = np.zeros((self.n_components, 4), int)
        for k in range(self.n_components):
            ys, xs = np.nonzero(self.support[k])
            if ys.size == 0:
                boxes[k] = (self.peaks[k][0], self.peaks[k][1], self.peaks[k][0], self.peaks[k][1])
                continue
            oy, ox = self.origins[k]
            boxes[k] = (oy + ys.min(), ox + xs.min(), oy + ys.max() + 1, ox + xs.max() + 1)
        return boxes

    @property
    def component_fluxes(self) -> np.ndarray:
        """(K, B) model-frame flux of each component."""
        return self.spectra * self.morphs.sum(axis=(1, 2))[:, None]

    @property
    def source_fluxes(self) -> np.ndarray:
        """(S, B) model-frame flux of each source (sum over its components)."""
        out = np.zeros((self.n_sources, self.spectra.shape[1]), np.float32)
        np.add.at(out, self.component_source, self.component_fluxes)
        return out

    def _fit_view(self) -> tuple[Placement, FitData]:
        """The result as the fit sees a blend, on the unpadded image: its placement and data
        (the FFT grid of :func:`~scarlet_jax.fft.fft_shape_for` for this image)."""
        obs = self.observation
        _, height, width = obs.shape
        k = self.n_components
        fft_shape = fft_shape_for((height, width), obs.diff_kernel.shape[-2:])
        support = jnp.asarray(self.support, jnp.float32)
        placement = Placement(
            origins=jnp.asarray(self.origins, jnp.int32),
            bounds=support,
            support=support,
            active=jnp.ones((k,), bool),
            source=jnp.asarray(self.component_source, jnp.int32),
            peaks=jnp.asarray(self.peaks, jnp.int32),
            symmetric=jnp.zeros((k,), bool),
        )
        data = FitData(
            images=jnp.asarray(obs.images, jnp.float32),
            weights=jnp.asarray(obs.weights, jnp.float32),
            kernel_fft=kernel_to_fft(obs.diff_kernel, fft_shape),
            noise_rms=jnp.asarray(obs.noise_rms, jnp.float32),
            fft_shape=fft_shape,
            margin=self.morphs.shape[-1] // 2,
        )
        return placement, data

    def _models(self, mask: np.ndarray) -> jax.Array:
        """Convolved model (:func:`~scarlet_jax.likelihood.render`) of the components selected
        by ``mask`` (K,) -> (B, H, W), or (N, K) -> (N, B, H, W)."""
        placement, data = self._fit_view()
        spectra, morphs = jnp.asarray(self.spectra), jnp.asarray(self.morphs)

        def one(m):
            return render(Components(spectra=spectra * m[:, None], morphs=morphs), placement, data)

        mask = jnp.asarray(mask, jnp.float32)
        return one(mask) if mask.ndim == 1 else jax.lax.map(one, mask)

    @property
    def model(self) -> np.ndarray:
        """(B, H, W) float32 convolved model in the observed frame."""
        return np.asarray(self._models(np.ones(self.n_components)))

    @property
    def residual(self) -> np.ndarray:
        """(B, H, W) data minus model."""
        return self.observation.images - self.model

    def source_models(self, convolved: bool = True) -> np.ndarray:
        """(S, B, H, W) float32 per-source model, in the observed frame (convolved with the
        difference kernel) by default, else in the model frame."""
        select = (self.component_source[None, :] == np.arange(self.n_sources)[:, None])
        if convolved:
            return np.asarray(self._models(select.astype(np.float32)))
        n_bands, height, width = self.observation.shape
        out = np.zeros((self.n_sources, n_bands, height, width), np.float32)
        boxes = self.spectra[:, :, None, None] * self.morphs[:, None]
        box = self.morphs.shape[-1]
        for k in range(self.n_components):
            oy, ox = self.origins[k]
            y0, x0 = max(oy, 0), max(ox, 0)
            y1, x1 = min(oy + box, height), min(ox + box, width)
            out[self.component_source[k], :, y0:y1, x0:x1] += boxes[k][
                :, y0 - oy : y1 - oy, x0 - ox : x1 - ox
            ]
        return out

    def chi2(self) -> float:
        """``sum(W * (D - P(M))**2)`` over all pixels."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sum(self.observation.weights * self.residual.astype(np.float64) ** 2))

    def chi2_per_pixel(self) -> float:
        """chi^2 divided by the number of (band, pixel) values with weight > 0."""
        return self.chi2() / max(int(np.sum(self.observation.weights > 0)), 1)
