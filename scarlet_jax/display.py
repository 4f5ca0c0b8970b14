"""Pictures of blends and results (needs the ``plot`` extra).

matplotlib is imported lazily, inside the plotting functions, and only through its
object-oriented API (:class:`matplotlib.figure.Figure` with the Agg canvas): nothing here
touches ``pyplot`` or the global backend, so the functions are safe in scripts, servers
and notebooks alike. Every ``plot_*`` function writes a PNG and returns its path.

Colour images use the asinh mapping of Lupton et al. (2004, PASP 116, 133) on any number
of bands: the bands are spread over blue, green and red by wavelength order
(:func:`channel_map`), the three channels share one intensity stretch, so colours are
preserved; residuals use the same stretch, signed, around a mid-grey zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "auto_stretch",
    "channel_map",
    "lupton_rgb",
    "plot_data_model_residual",
    "plot_loss",
    "plot_scene",
    "plot_sources",
    "signed_rgb",
]

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
    images: np.ndarray, stretch: float | None = None, q: float = 10.0, minimum: float = 0.0
) -> np.ndarray:
    """Lupton et al. (2004) asinh colour image of any number of bands.

    ``I = mean(R, G, B) - minimum``; each channel is scaled by
    ``asinh(q * I / stretch) / (q * I)``, negatives are clipped to 0 and a pixel whose
    brightest channel exceeds 1 is scaled down (keeping its colour).

    Args:
      images: (B, H, W) (or (H, W)) images, bluest band first (see :func:`channel_map`).
      stretch: linear range of the asinh; None picks :func:`auto_stretch`.
      q: asinh softening (larger: more compression of bright parts).
      minimum: black point subtracted from every channel.

    Returns:
      (H, W, 3) float64 in [0, 1].
    """
    rgb = _to_rgb(images) - minimum
    if stretch is None:
        stretch = auto_stretch(images)
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


def signed_rgb(images: np.ndarray, stretch: float, q: float = 10.0) -> np.ndarray:
    """Colour image of a signed image (a residual) on the :func:`lupton_rgb` stretch:
    zero is mid-grey, positive brighter, negative darker; the colour shows the bands.

    Returns:
      (H, W, 3) float64 in [0, 1].
    """
    rgb = _to_rgb(images)
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


def _show(ax, rgb, title: str, extent=None):
    ax.imshow(rgb, origin="lower", interpolation="nearest", extent=extent)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def _color(s: int) -> str:
    return _COLORS[s % len(_COLORS)]


def _mark_sources(ax, centers, fontsize: int = 9):
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    for s, (y, x) in enumerate(np.asarray(centers, float)):
        ax.plot(x, y, "+", color=_color(s), ms=9, mew=1.5, path_effects=outline)
        ax.text(x + 1.2, y + 1.2, str(s), color=_color(s), fontsize=fontsize, weight="bold",
                path_effects=outline)


def plot_data_model_residual(result, path, stretch: float | None = None, q: float = 10.0):
    """Data, model and residual of a result as colour images, with the sources marked.

    The model uses the data's stretch; the residual the same stretch, signed around a
    mid-grey zero (:func:`signed_rgb`).

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      path: PNG file to write.
      stretch: as for :func:`lupton_rgb` (stretch None: from the data).
      q: as for :func:`lupton_rgb`.

    Returns:
      The path written.
    """
    data = np.asarray(result.observation.images)
    stretch = auto_stretch(data) if stretch is None else stretch
    failed = result.error is not None or result.n_components == 0
    model = np.zeros_like(data) if failed else np.asarray(result.model)
    resid = data - model
    _, height, width = data.shape
    panel = 4.0
    fig = _figure(3 * panel, panel * height / width + 0.6)
    axes = fig.subplots(1, 3)
    chi2 = "" if failed else f", chi^2/pixel {result.chi2_per_pixel():.3f}"
    _show(axes[0], lupton_rgb(data, stretch, q), "data")
    _show(axes[1], lupton_rgb(model, stretch, q), f"model ({result.status}{chi2})")
    _show(axes[2], signed_rgb(resid, stretch, q), "residual (grey = 0)")
    for ax in axes:
        _mark_sources(ax, result.centers)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(-0.5, height - 0.5)
    if result.error is not None:
        fig.suptitle(f"failed: {result.error}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_scene(result, path, stretch: float | None = None, q: float = 10.0):
    """The data with every component's own box outlined in its source's colour and the
    sources labelled.

    Returns:
      The path written.
    """
    from matplotlib.patches import Rectangle

    data = np.asarray(result.observation.images)
    _, height, width = data.shape
    fig = _figure(6.0, 6.0 * height / width + 0.4)
    ax = fig.subplots(1, 1)
    _show(ax, lupton_rgb(data, stretch, q), f"{result.n_sources} sources, "
          f"{result.n_components} components")
    if result.n_components:
        boxes = result.component_boxes()
        for k, (y0, x0, y1, x1) in enumerate(boxes):
            s = int(result.component_source[k])
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   edgecolor=_color(s), lw=1.2, ls="-" if k % 2 == 0 else "--"))
            py, px = result.peaks[k]
            ax.plot(px, py, ".", color=_color(s), ms=4)
    _mark_sources(ax, result.centers, fontsize=11)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(-0.5, height - 0.5)
    fig.tight_layout()
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


def plot_sources(result, path, stretch: float | None = None, q: float = 10.0,
                 per_row: int = 3, max_sources: int = 48):
    """Per-source panels: the source's convolved model and its flux-conserved image (the
    data re-distributed by :func:`~scarlet_jax.measure.redistribute_flux`), cropped to the
    source's boxes; both panels of a source share one stretch (by default from its model,
    at least 5 times the mean noise rms, so faint sources stay visible above the noise).

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      path: PNG file to write.
      stretch: as for :func:`lupton_rgb` (stretch None: per source, from its model).
      q: as for :func:`lupton_rgb`.
      per_row: sources per row (two panels each).
      max_sources: show at most this many sources (the first ones).

    Returns:
      The path written.
    """
    from .measure import redistribute_flux

    n = min(result.n_sources, max_sources) if result.n_components else 0
    if n == 0:
        fig = _figure(4.0, 2.0)
        ax = fig.subplots(1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, "no sources" if result.error is None else f"failed: {result.error}",
                ha="center", va="center", fontsize=9, wrap=True)
        return _save(fig, path)
    models = np.asarray(result.source_models())
    floor = 5.0 * float(np.mean(result.observation.noise_rms))
    conserved, fluxes = redistribute_flux(result)
    per_row = max(1, min(per_row, n))
    rows = -(-n // per_row)
    fig = _figure(2 * per_row * 2.2, rows * 2.5)
    axes = np.asarray(fig.subplots(rows, 2 * per_row, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    for s in range(n):
        y0, x0, y1, x1 = _source_window(result, s)
        extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
        row, col = divmod(s, per_row)
        ax_m, ax_c = axes[row, 2 * col], axes[row, 2 * col + 1]
        for ax in (ax_m, ax_c):
            ax.axis("on")
        total = float(fluxes[s].sum())
        crop = models[s][:, y0:y1, x0:x1]
        this = max(auto_stretch(crop), floor) if stretch is None else stretch
        _show(ax_m, lupton_rgb(crop, this, q), f"{s}: model", extent=extent)
        _show(ax_c, lupton_rgb(conserved[s][:, y0:y1, x0:x1], this, q),
              f"{s}: conserved ({total:.3g})", extent=extent)
        for ax in (ax_m, ax_c):
            ax.spines[:].set_color(_color(s))
            ax.spines[:].set_linewidth(2)
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
