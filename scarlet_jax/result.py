"""What a deblend returns: the fitted components, unpadded, with the fit history."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from .boxes import overlap
from .components import Components
from .fft import fft_shape_for, kernel_to_fft
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

    def _models(self, mask: np.ndarray, convolved: bool = True) -> np.ndarray:
        """Model of the components selected by ``mask`` (K,) -> (B, H, W), or (N, K) ->
        (N, B, H, W), float32 in the observed frame: convolved with the difference kernel
        (what :func:`~scarlet_jax.likelihood.render` computes in a fit: boxes masked by their
        support, summed into the image, the same FFT grid and kernel) or not.

        Computed on the host with numpy: a result's model is read once per blend, and a
        device program here would compile again for every new blend shape (in a fresh
        process, that was seconds per shape for a few milliseconds of work)."""
        mask = np.asarray(mask, np.float32)
        masks = mask[None] if mask.ndim == 1 else mask
        n_bands, height, width = self.observation.shape
        morphs = self.morphs * self.support if convolved else self.morphs
        boxes = self.spectra[:, :, None, None] * morphs[:, None]  # (K, B, h, w)
        bh, bw = morphs.shape[-2:]
        if convolved:
            kernel = self.observation.diff_kernel
            fft_shape = fft_shape_for((height, width), kernel.shape[-2:])
            kernel_fft = np.asarray(kernel_to_fft(kernel, fft_shape))
        out = np.zeros((len(masks), n_bands, height, width), np.float32)
        for n, m in enumerate(masks):  # one (B, H, W) image at a time: memory stays small
            image = np.zeros((n_bands, height, width), np.float64)
            for k in np.flatnonzero(m):
                cut = overlap(self.origins[k], (bh, bw), (height, width))
                if cut is not None:
                    image[(slice(None), *cut[0])] += m[k] * boxes[k][(slice(None), *cut[1])]
            if convolved:
                image = np.fft.irfft2(np.fft.rfft2(image, s=fft_shape) * kernel_fft,
                                      s=fft_shape)[:, :height, :width]
            out[n] = image
        return out[0] if mask.ndim == 1 else out

    @property
    def model(self) -> np.ndarray:
        """(B, H, W) float32 convolved model in the observed frame."""
        return self._models(np.ones(self.n_components))

    @property
    def residual(self) -> np.ndarray:
        """(B, H, W) data minus model."""
        return self.observation.images - self.model

    def source_models(self, convolved: bool = True) -> np.ndarray:
        """(S, B, H, W) float32 per-source model, in the observed frame (convolved with the
        difference kernel) by default, else in the model frame."""
        select = (self.component_source[None, :] == np.arange(self.n_sources)[:, None])
        return self._models(select.astype(np.float32), convolved=convolved)

    def chi2(self) -> float:
        """``sum(W * (D - P(M))**2)`` over all pixels."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sum(self.observation.weights * self.residual.astype(np.float64) ** 2))

    def chi2_per_pixel(self) -> float:
        """chi^2 divided by the number of (band, pixel) values with weight > 0."""
        return self.chi2() / max(int(np.sum(self.observation.weights > 0)), 1)
