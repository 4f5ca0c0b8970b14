"""Device memory of a blend, estimated from its bucket shapes, and the limit it must fit.

The estimate counts what one lane holds while a block runs: the packed data and placement,
the fit state (parameters, optimiser moments, best state, supports, loss history) and the
step's largest temporaries (the padded FFT grids and the per-band component boxes), times
a safety factor for XLA's buffers. It is an estimate, meant to refuse inputs that cannot
fit before any work is done and to cap the lanes of a bucket, not an exact account.
"""

from __future__ import annotations

import os

import jax

from .errors import BadInputError

__all__ = ["MEMORY_ENV", "lane_bytes", "canvas_bytes", "memory_limit", "check_fits",
           "format_bytes"]

#: Environment variable that overrides the limit (bytes, or with a K/M/G/T suffix).
MEMORY_ENV = "SCARLET_JAX_MEMORY_LIMIT"
_SAFETY = 2.0
_F32 = 4


def canvas_bytes(n_bands: int, canvas: tuple, fft_shape: tuple) -> int:
    """Bytes of the image-sized arrays of one blend: images, weights, the kernel's FFT and
    the step's FFT temporaries, with the safety factor."""
    height, width = canvas
    fh, fw = fft_shape
    images = 2 * n_bands * height * width * _F32  # images, weights
    kernel = n_bands * fh * (fw // 2 + 1) * 2 * _F32
    fft_work = 4 * n_bands * fh * fw * _F32  # model/residual grids and their rfft2s
    return int(_SAFETY * (images + kernel + fft_work))


def lane_bytes(key, max_iter: int) -> int:
    """Estimated device bytes of one blend (one lane) in bucket ``key`` (a
    :class:`~scarlet_jax.components.BucketKey`: n_bands, canvas, pixels, slots,
    fft_shape)."""
    box_pixels = key.pixels
    # placement: bounds, support; state: morphs, m, v, vhat, best morphs, support, best
    # support; step: per-band boxes (model and extracted gradient, K x B x h x w, twice)
    boxes = (2 + 7) * box_pixels * _F32 + 4 * key.n_bands * box_pixels * _F32
    small = (6 * key.slots * key.n_bands + max_iter) * _F32
    return canvas_bytes(key.n_bands, key.canvas, key.fft_shape) + int(_SAFETY * (boxes + small))


def _parse_bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = dict(K=2**10, M=2**20, G=2**30, T=2**40)
    try:
        if text and text[-1] in scale:
            return int(float(text[:-1]) * scale[text[-1]])
        return int(float(text))
    except ValueError:
        raise BadInputError(f"{MEMORY_ENV}={text!r}: need a number of bytes, e.g. 8G") from None


def memory_limit(limit: int | str | None = None) -> int:
    """Device bytes a blend may use: ``limit`` if given, else ``$SCARLET_JAX_MEMORY_LIMIT``,
    else 80% of the device's memory (``memory_stats()['bytes_limit']``), else half of the
    host's physical memory (the CPU backend reports none)."""
    if limit is None:
        limit = os.environ.get(MEMORY_ENV) or None
    if limit is not None:
        value = _parse_bytes(limit) if isinstance(limit, str) else int(limit)
        if value <= 0:
            raise BadInputError(f"memory limit must be > 0 bytes, got {limit!r}")
        return value
    device = jax.local_devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:  # a backend without memory stats
        stats = {}
    if stats.get("bytes_limit"):
        return int(0.8 * stats["bytes_limit"])
    return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def check_fits(need: int, limit: int, what: str) -> None:
    """Raise :class:`BadInputError` naming ``what`` when ``need`` bytes exceed ``limit``."""
    if need > limit:
        raise BadInputError(
            f"{what} needs about {format_bytes(need)} of device memory, over the limit of "
            f"{format_bytes(limit)} (split the image, or raise the limit with "
            f"memory_limit= or ${MEMORY_ENV})"
        )
