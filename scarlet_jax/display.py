"""Pictures of blends and results (needs the ``plot`` extra).

matplotlib is imported lazily, inside the plotting functions, and only through its
object-oriented API (:class:`matplotlib.figure.Figure` with the Agg canvas): nothing here
touches ``pyplot`` or the global backend, so the functions are safe in scripts, servers
and notebooks alike. Every ``plot_*`` function writes a PNG and returns its path.

Colour images use the asinh mapping of Lupton et al. (2004, PASP 116, 133) on any number
of bands: the bands are spread over blue, green and red by wavelength order
(:func:`channel_map`, named in every title), the three channels share one intensity
stretch, so colours are preserved; residuals use the same stretch, signed, around a
mid-grey zero. The stretch comes from the noise (:func:`noise_scaling`): black is the
background level, the asinh softening is twice the noise of the intensity image, so the
noise stays a dim grain and faint sources show above it, and the brightest pixels just
saturate. Axes are 0-based pixels (x right, y up), as the tables give positions; masked
pixels (weight 0) are shaded magenta.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .measure import redistribute_flux
from .tables import FLOOR_RELATIVE, IMAGE_UNITS

__all__ = [
    "Scaling",
    "auto_stretch",
    "channel_map",
    "channel_names",
    "noise_scaling",
    "lupton_rgb",
    "plot_data_model_residual",
    "plot_loss",
    "plot_scene",
    "plot_sources",
    "signed_rgb",
]

MASK_COLOR = (1.0, 0.0, 1.0)
#: Pixels whose 3x3-smoothed intensity is below about this significance are shown grey;
#: brighter ones gain their colour gradually (noise has no colour worth showing).
GREY_SNR = 3.0

_COLORS = (
    "#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf",
    "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3",
)


def channel_map(n_bands: int) -> np.ndarray:
    """(3, B) weights mapping B bands (bluest first) onto (R, G, B) channels.

    Band b sits at position ``b / (B - 1)`` between blue (0) and red (1); each channel
    takes a triangular weight around its own position (blue 0, green 0.5, red 1), and each
    channel's weights sum to 1. One band is grey; two bands are blue and red, with green
    their mean; three bands map one to one.
    """
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    if n_bands == 1:
        return np.ones((3, 1))
    t = np.arange(n_bands) / (n_bands - 1)
    centres = np.array([1.0, 0.5, 0.0])  # R, G, B
    w = np.clip(1.0 - np.abs(t[None, :] - centres[:, None]) / 0.5, 0.0, None)
    if n_bands == 2:
        w[1] = 0.5
    return w / w.sum(axis=1, keepdims=True)


def channel_names(bands) -> str:
    """Which bands make R, G and B (as :func:`channel_map` mixes them), e.g.
    ``"R = z+y, G = r+i+z, B = g+r"``."""
    bands = [str(b) for b in bands]
    w = channel_map(len(bands))
    parts = []
    for c, name in enumerate("RGB"):
        used = [bands[b] for b in range(len(bands)) if w[c, b] > 1e-6]
        parts.append(f"{name} = {'+'.join(used)}")
    return ", ".join(parts)


class Scaling(NamedTuple):
    """Parameters of :func:`lupton_rgb`: black point, linear range, asinh softening, and
    the noise of the intensity image (colours fade to grey below a few times it)."""

    minimum: float
    stretch: float
    q: float
    noise: float = 0.0


def noise_scaling(images: np.ndarray, noise_rms=None, weights=None, softening: float = 2.0,
                  percentile: float = 99.9) -> Scaling:
    """A :func:`lupton_rgb` scaling set from the noise, so noisy data show no confetti.

    With ``I`` the intensity (mean of the R, G, B mixes of the bands), the picture is
    ``asinh((I - minimum) / beta) / asinh((I_top - minimum) / beta)``: ``minimum`` is the
    median of ``I`` (the background is black), ``beta = softening * sigma_I`` keeps the
    noise in the dim, linear part, and ``I_top``, the ``percentile`` of ``I``, just
    saturates. In :func:`lupton_rgb`'s terms ``q = asinh((I_top - minimum) / beta)`` and
    ``stretch = q * beta``. Where the 3x3-smoothed intensity is not significant
    (``GREY_SNR``) a pixel's colour fades to grey (noise has no colour worth showing:
    this is what removes the confetti).

    Args:
      images: (B, H, W) images, bluest band first.
      noise_rms: optional (B,) noise per band; default a robust estimate (MAD) from the
        intensity image.
      weights: optional (B, H, W) inverse variance; pixels with weight 0 in every band
        are left out of the statistics.
      softening: ``beta`` in units of the intensity noise.
      percentile: the intensity that just saturates.

    Returns:
      A :class:`Scaling`.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    intensity = _to_rgb(images).mean(axis=-1)
    valid = np.isfinite(intensity)
    if weights is not None:
        valid &= (np.asarray(weights) > 0).any(axis=0)
    values = intensity[valid] if valid.any() else intensity.ravel()
    if values.size == 0:
        return Scaling(0.0, 1.0, 1.0)
    background = float(np.median(values))
    if noise_rms is not None:
        mix = channel_map(images.shape[0]).mean(axis=0)  # (B,) weight of each band in I
        sigma = float(np.sqrt(np.sum((mix * np.asarray(noise_rms, np.float64)) ** 2)))
    else:
        sigma = 1.4826 * float(np.median(np.abs(values - background)))
    top = float(np.percentile(values, percentile)) - background
    if not sigma > 0:
        sigma = top / 100 if top > 0 else 1.0
    beta = softening * sigma
    q = float(np.arcsinh(max(top, 3 * beta) / beta))
    return Scaling(background, q * beta, q, sigma)


def _to_rgb(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"images: expected (B, H, W), got shape {images.shape}")
    images = np.where(np.isfinite(images), images, 0.0)
    return np.einsum("cb,bhw->hwc", channel_map(images.shape[0]), images)


def auto_stretch(images: np.ndarray, percentile: float = 99.5, fraction: float = 0.05) -> float:
    """A stretch for :func:`lupton_rgb`: ``fraction`` of the ``percentile`` of the
    intensity (the band average), so the background noise stays dark and bright cores
    saturate gently."""
    intensity = _to_rgb(images).mean(axis=-1)
    level = float(np.percentile(intensity, percentile)) if intensity.size else 0.0
    return level * fraction if level > 0 else 1.0


def lupton_rgb(
    images: np.ndarray, stretch: float | None = None, q: float = 10.0, minimum: float = 0.0,
    *, scaling: Scaling | None = None,
) -> np.ndarray:
    """Lupton et al. (2004) asinh colour image of any number of bands.

    ``I = mean(R, G, B) - minimum``; each channel is scaled by
    ``asinh(q * I / stretch) / (q * I)``, negatives are clipped to 0 and a pixel whose
    brightest channel exceeds 1 is scaled down (keeping its colour).

    Args:
      images: (B, H, W) (or (H, W)) images, bluest band first (see :func:`channel_map`).
      stretch: linear range of the asinh; None: the whole scaling (stretch, q and
        minimum) from :func:`noise_scaling`.
      q: asinh softening (larger: more compression of bright parts).
      minimum: black point subtracted from every channel.
      scaling: a :class:`Scaling` (overrides stretch, q and minimum).

    Returns:
      (H, W, 3) float64 in [0, 1].
    """
    noise = 0.0
    if scaling is None and stretch is None:
        scaling = noise_scaling(images)
    if scaling is not None:
        minimum, stretch, q, noise = scaling
    rgb = _fade_to_grey(_to_rgb(images) - minimum, noise)
    if not stretch > 0 or not q > 0:
        raise ValueError(f"stretch and q must be > 0, got stretch={stretch}, q={q}")
    intensity = rgb.mean(axis=-1, keepdims=True)
    pos = intensity > 0
    safe = np.where(pos, intensity, 1.0)
    scale = np.where(pos, np.arcsinh(q * safe / stretch) / (q * safe), 0.0)
    out = np.clip(rgb * scale, 0.0, None)
    peak = out.max(axis=-1, keepdims=True)
    out = np.where(peak > 1, out / np.where(peak > 1, peak, 1.0), out)
    return np.clip(out, 0.0, 1.0)


def _box_mean(image: np.ndarray) -> np.ndarray:
    """(H, W) mean over each pixel's 3x3 neighbourhood (edges padded by reflection)."""
    padded = np.pad(image, 1, mode="reflect") if min(image.shape) > 1 else np.pad(image, 1,
                                                                                  mode="edge")
    h, w = image.shape
    return sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def _fade_to_grey(rgb: np.ndarray, noise: float) -> np.ndarray:
    """(H, W, 3): colour only where there is signal. Each pixel's colour is mixed toward
    its grey level by the significance of its 3x3-smoothed intensity ``S`` (noise
    ``noise / 3``): grey below ``S = GREY_SNR - 1`` sigma, full colour from
    ``GREY_SNR + 1`` sigma. Unchanged when ``noise`` is 0."""
    if not noise > 0:
        return rgb
    grey = rgb.mean(axis=-1, keepdims=True)
    snr = np.abs(_box_mean(grey[..., 0])) / (noise / 3.0)
    keep = np.clip((snr - (GREY_SNR - 1.0)) / 2.0, 0.0, 1.0)[..., None]
    return grey + keep * (rgb - grey)


def signed_rgb(images: np.ndarray, stretch: float, q: float = 10.0,
               noise: float = 0.0) -> np.ndarray:
    """Colour image of a signed image (a residual) on the :func:`lupton_rgb` stretch:
    zero is mid-grey, positive brighter, negative darker; the colour shows the bands
    (faded to grey below ``GREY_SNR * noise``, as in :func:`lupton_rgb`).

    Returns:
      (H, W, 3) float64 in [0, 1].
    """
    rgb = _fade_to_grey(_to_rgb(images), noise)
    intensity = np.abs(rgb).mean(axis=-1, keepdims=True)
    pos = intensity > 0
    safe = np.where(pos, intensity, 1.0)
    scale = np.where(pos, np.arcsinh(q * safe / stretch) / (q * safe), 0.0)
    out = rgb * scale
    peak = np.abs(out).max(axis=-1, keepdims=True)
    out = np.where(peak > 1, out / np.where(peak > 1, peak, 1.0), out)
    return np.clip(0.5 + 0.5 * out, 0.0, 1.0)


# ------------------------------------------------------------------------------- plotting


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, facecolor="white")
    return path


def _show(ax, rgb, title: str, extent=None, xlabel: bool = True, ylabel: bool = True):
    """An RGB image on 0-based pixel axes (x right, y up)."""
    ax.imshow(rgb, origin="lower", interpolation="nearest", extent=extent)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7, length=2)
    if xlabel:
        ax.set_xlabel("x [pixel]", fontsize=8)
    if ylabel:
        ax.set_ylabel("y [pixel]", fontsize=8)


def _mask_overlay(ax, weights, window=None, extent=None) -> bool:
    """Shade pixels with weight 0: magenta where every band is masked, lighter where some
    are. Returns whether any pixel is shaded."""
    bad = np.asarray(weights) <= 0  # (B, H, W)
    if window is not None:
        y0, x0, y1, x1 = window
        bad = bad[:, y0:y1, x0:x1]
    every, some = bad.all(axis=0), bad.any(axis=0)
    if not some.any():
        return False
    overlay = np.zeros(every.shape + (4,))
    overlay[..., :3] = MASK_COLOR
    overlay[..., 3] = np.where(every, 0.6, np.where(some, 0.3, 0.0))
    ax.imshow(overlay, origin="lower", interpolation="nearest", extent=extent)
    return True


def _color(s: int) -> str:
    return _COLORS[s % len(_COLORS)]


def _mark_sources(ax, centers, fontsize: int = 9):
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    for s, (y, x) in enumerate(np.asarray(centers, float)):
        ax.plot(x, y, "+", color=_color(s), ms=9, mew=1.5, path_effects=outline)
        ax.text(x + 1.2, y + 1.2, str(s), color=_color(s), fontsize=fontsize, weight="bold",
                path_effects=outline)


def _scaling(result) -> Scaling:
    obs = result.observation
    return noise_scaling(obs.images, obs.noise_rms, obs.weights)


def _colour_note(result) -> str:
    return (f"colours: {channel_names(result.observation.bands)} (Lupton asinh; black = "
            f"background, softening 2x noise, colour only where significant)")


def plot_data_model_residual(result, path, stretch: float | None = None, q: float = 10.0):
    """Data, model and residual of a result as colour images, with the sources marked and
    masked pixels shaded.

    The model uses the data's scaling (:func:`noise_scaling`); the residual the same
    stretch, signed around a mid-grey zero (:func:`signed_rgb`).

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      path: PNG file to write.
      stretch: as for :func:`lupton_rgb` (stretch None: from the noise).
      q: as for :func:`lupton_rgb`.

    Returns:
      The path written.
    """
    from matplotlib.patches import Patch

    data = np.asarray(result.observation.images)
    scaling = _scaling(result) if stretch is None else Scaling(0.0, stretch, q)
    failed = result.error is not None or result.n_components == 0
    model = np.zeros_like(data) if failed else np.asarray(result.model)
    resid = data - model
    _, height, width = data.shape
    panel = 4.0
    fig = _figure(3 * panel, panel * height / width + 1.0)
    axes = fig.subplots(1, 3)
    chi2 = "" if failed else f", chi^2/pixel {result.chi2_per_pixel():.3f}"
    _show(axes[0], lupton_rgb(data, scaling=scaling), "data")
    masked = _mask_overlay(axes[0], result.observation.weights)
    _show(axes[1], lupton_rgb(model, scaling=scaling), f"model ({result.status}{chi2})",
          ylabel=False)
    _show(axes[2], signed_rgb(resid, scaling.stretch, scaling.q, scaling.noise),
          "residual (grey = 0)", ylabel=False)
    for ax in axes:
        _mark_sources(ax, result.centers)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(-0.5, height - 0.5)
    title = _colour_note(result)
    if result.error is not None:
        title = f"failed: {result.error}\n{title}"
    fig.suptitle(title, fontsize=9)
    if masked:
        axes[0].legend(handles=[Patch(color=MASK_COLOR, alpha=0.6, label="masked (weight 0)")],
                       loc="upper right", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    return _save(fig, path)


def _component_rank(component_source) -> np.ndarray:
    """(K,) 0 for a source's first component, 1 for its second, ..."""
    source = np.asarray(component_source)
    rank = np.zeros(source.shape, int)
    for s in np.unique(source):
        rank[source == s] = np.arange(int((source == s).sum()))
    return rank


def plot_scene(result, path, stretch: float | None = None, q: float = 10.0):
    """The data with every component's own box outlined in its source's colour (solid:
    the source's first component, dashed: its second), component peaks, the sources
    labelled, masked pixels shaded, and a legend.

    Returns:
      The path written.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    data = np.asarray(result.observation.images)
    _, height, width = data.shape
    scaling = _scaling(result) if stretch is None else Scaling(0.0, stretch, q)
    fig = _figure(6.0, 6.0 * height / width + 1.3)
    ax = fig.subplots(1, 1)
    _show(ax, lupton_rgb(data, scaling=scaling),
          f"{result.n_sources} sources, {result.n_components} components\n"
          f"{channel_names(result.observation.bands)}")
    masked = _mask_overlay(ax, result.observation.weights)
    if result.n_components:
        boxes = result.component_boxes()
        rank = _component_rank(result.component_source)
        for k, (y0, x0, y1, x1) in enumerate(boxes):
            s = int(result.component_source[k])
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   edgecolor=_color(s), lw=1.2,
                                   ls="-" if rank[k] == 0 else "--"))
            py, px = result.peaks[k]
            ax.plot(px, py, ".", color=_color(s), ms=4)
    _mark_sources(ax, result.centers, fontsize=11)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(-0.5, height - 0.5)
    grey = "0.3"
    handles = [
        Line2D([], [], color=grey, ls="-", label="box of a source's 1st component"),
        Line2D([], [], color=grey, ls="--", label="box of its 2nd component"),
        Line2D([], [], color=grey, ls="", marker="+", ms=8, label="source center (index)"),
        Line2D([], [], color=grey, ls="", marker=".", ms=6, label="component peak"),
    ]
    if masked:
        handles.append(Patch(color=MASK_COLOR, alpha=0.6, label="masked pixel (weight 0)"))
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, path)


def _source_window(result, s: int, pad: int = 3) -> tuple[int, int, int, int]:
    _, height, width = result.observation.shape
    boxes = result.component_boxes()[np.asarray(result.component_source) == s]
    if boxes.size == 0:
        y, x = np.round(np.asarray(result.centers[s])).astype(int)
        boxes = np.array([[y - 5, x - 5, y + 6, x + 6]])
    y0 = max(int(boxes[:, 0].min()) - pad, 0)
    x0 = max(int(boxes[:, 1].min()) - pad, 0)
    y1 = min(int(boxes[:, 2].max()) + pad, height)
    x1 = min(int(boxes[:, 3].max()) + pad, width)
    return y0, x0, max(y1, y0 + 1), max(x1, x0 + 1)


def _flux_line(bands, fluxes, noise_rms) -> str:
    parts = []
    for band, f, n in zip(bands, fluxes, noise_rms, strict=True):
        f = 0.0 if abs(f) < FLOOR_RELATIVE * n else f
        parts.append(f"{band} {f:.3g}")
    return " ".join(parts)


def plot_sources(result, path, stretch: float | None = None, q: float = 10.0,
                 per_row: int = 3, max_sources: int = 48, unit: str | None = None):
    """Per-source panels: the source's convolved model and its flux-conserved image (the
    data re-distributed by :func:`~scarlet_jax.measure.redistribute_flux`), cropped to the
    source's boxes, with the per-band model and flux-conserved fluxes written under them.
    Each source's pair shares one scaling: the blend's noise softening, saturating at the
    source's own model peak, so faint sources are as visible as bright ones.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      path: PNG file to write.
      stretch: as for :func:`lupton_rgb` (stretch None: from the noise).
      q: as for :func:`lupton_rgb`.
      per_row: sources per row (two panels each).
      max_sources: show at most this many sources (the first ones).
      unit: the flux unit named in the title (default "image units").

    Returns:
      The path written.
    """
    n = min(result.n_sources, max_sources) if result.n_components else 0
    if n == 0:
        fig = _figure(4.0, 2.0)
        ax = fig.subplots(1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, "no sources" if result.error is None else f"failed: {result.error}",
                ha="center", va="center", fontsize=9, wrap=True)
        return _save(fig, path)
    obs = result.observation
    models = np.asarray(result.source_models())
    blend = _scaling(result)
    beta = blend.stretch / blend.q  # the noise softening of the whole blend
    conserved, conserved_fluxes = redistribute_flux(result)
    model_fluxes = np.asarray(result.source_fluxes)
    per_row = max(1, min(per_row, n))
    rows = -(-n // per_row)
    fig = _figure(2 * per_row * 2.3, rows * 2.9 + 0.7)
    axes = np.asarray(fig.subplots(rows, 2 * per_row, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    for s in range(n):
        y0, x0, y1, x1 = window = _source_window(result, s)
        extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
        row, col = divmod(s, per_row)
        ax_m, ax_c = axes[row, 2 * col], axes[row, 2 * col + 1]
        for ax in (ax_m, ax_c):
            ax.axis("on")
        crop = models[s][:, y0:y1, x0:x1]
        if stretch is None:  # the blend's noise softening, saturating at this source's peak
            top = float(_to_rgb(crop).mean(axis=-1).max())
            q_s = float(np.arcsinh(max(top, 3 * beta) / beta))
            scaling = Scaling(0.0, q_s * beta, q_s, blend.noise)
        else:
            scaling = Scaling(0.0, stretch, q)
        _show(ax_m, lupton_rgb(crop, scaling=scaling),
              f"source {s}: model", extent=extent, xlabel=False, ylabel=False)
        _show(ax_c, lupton_rgb(conserved[s][:, y0:y1, x0:x1], scaling=scaling),
              f"source {s}: flux-conserved", extent=extent, xlabel=False, ylabel=False)
        _mask_overlay(ax_c, obs.weights, window, extent)
        ax_m.set_xlabel("F: " + _flux_line(obs.bands, model_fluxes[s], obs.noise_rms),
                        fontsize=7)
        ax_c.set_xlabel("C: " + _flux_line(obs.bands, conserved_fluxes[s], obs.noise_rms),
                        fontsize=7)
        for ax in (ax_m, ax_c):
            ax.spines[:].set_color(_color(s))
            ax.spines[:].set_linewidth(2)
    fig.suptitle(f"F: model flux, C: flux-conserved flux, per band, in {unit or IMAGE_UNITS}; "
                 f"axes: pixels; {channel_names(obs.bands)}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_loss(result, path):
    """The loss ``0.5 * sum(W (D - P(M))^2)`` per iteration (log scale when positive).

    Returns:
      The path written.
    """
    loss = np.asarray(result.loss, dtype=np.float64)
    fig = _figure(5.0, 3.5)
    ax = fig.subplots(1, 1)
    if loss.size == 0:
        ax.axis("off")
        ax.text(0.5, 0.5, "no fit history", ha="center", va="center")
    else:
        it = np.arange(1, loss.size + 1)
        ax.plot(it, loss, "-", color="#377eb8", lw=1.5)
        ax.plot(it[-1:], loss[-1:], "o", color="#e41a1c", ms=5)
        finite = loss[np.isfinite(loss)]
        if finite.size and (finite > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.set_title(f"{result.status} after {result.n_iter} iterations "
                     f"(final {loss[-1]:.6g})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
