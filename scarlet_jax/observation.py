"""The observed blend: images, weights, PSFs and the PSF-difference kernel.

:func:`make_observation` is the single entry point; it validates on the host, repairs what
can be repaired (with an :class:`~scarlet_jax.errors.InputWarning`), casts to float32 and
precomputes the difference kernel.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence

import jax
import numpy as np

from .errors import BadInputError, InputWarning
from .psf import integrated_circular_gaussian, match_kernel

__all__ = [
    "Observation",
    "make_observation",
    "check_observation",
    "MODEL_PSF_SIGMA",
    "MODEL_PSF_SIZE",
    "bad_pixels",
]

MODEL_PSF_SIGMA = 0.8
MODEL_PSF_SIZE = 15
#: A PSF whose sum is off 1 by more than this is normalised with a warning.
PSF_SUM_TOLERANCE = 1e-3
F32_MAX = float(np.finfo(np.float32).max)
#: Variances below this have an inverse (the weight) that float32 cannot hold.
VARIANCE_MIN = 1.0 / F32_MAX
#: ``sum(weights * images**2)`` above this would overflow the float32 loss of a fit.
CHI2_LIMIT = 1e30


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "images",
        "variance",
        "weights",
        "psfs",
        "model_psf",
        "diff_kernel",
        "noise_rms",
    ],
    meta_fields=["bands"],
)
@dataclasses.dataclass(frozen=True)
class Observation:
    """A multi-band observation of one blend (a pytree; ``bands`` is static metadata).

    Attributes:
      images: (B, H, W) float32 data; non-finite pixels replaced by 0 (weight 0).
      variance: (B, H, W) float32 per-pixel variance as given (non-finite kept).
      weights: (B, H, W) float32 inverse variance, 0 where masked or invalid.
      psfs: (B, kh, kw) float32 observed PSFs, odd sizes, each summing to 1.
      model_psf: (mh, mw) float32 model-frame PSF.
      diff_kernel: (B, kh, kw) float32 kernel with ``psf_b = diff_kernel_b * model_psf``.
      noise_rms: (B,) float32 mean of sqrt(variance) over valid pixels, per band.
      bands: tuple of B band names.
    """

    images: np.ndarray
    variance: np.ndarray
    weights: np.ndarray
    psfs: np.ndarray
    model_psf: np.ndarray
    diff_kernel: np.ndarray
    noise_rms: np.ndarray
    bands: tuple = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, H, W)."""
        return tuple(self.images.shape)

    @property
    def n_bands(self) -> int:
        return int(self.images.shape[0])


def _first_index(bad: np.ndarray) -> str:
    """'band=b, y=i, x=j' (or 'y=i, x=j') of the first True entry of ``bad``."""
    idx = np.argwhere(bad)[0]
    names = ("band", "y", "x") if bad.ndim == 3 else ("y", "x")
    return ", ".join(f"{n}={int(i)}" for n, i in zip(names, idx, strict=False))


def _as_real_array(name: str, value, ndim: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float64 array with one of the ``ndim`` dimensions (bool and integer
    input is cast); anything non-numeric, complex or of the wrong rank raises."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nested lists, failing __array__
        raise BadInputError(f"{name}: cannot be read as an array ({err})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise BadInputError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise BadInputError(
            f"{name} {arr.shape}: complex input is not supported (dtype {arr.dtype}); "
            "pass the real part"
        )
    if arr.ndim not in ndim:
        raise BadInputError(
            f"{name}: expected {' or '.join(f'{d}-d' for d in ndim)} array, got shape {arr.shape}"
        )
    return arr.astype(np.float64)


def _normalised_psfs(name: str, psfs: np.ndarray) -> np.ndarray:
    """Check (B, kh, kw) or (kh, kw) PSFs and return them normalised to sum 1.

    Raises for even sizes, NaN/inf values and a sum <= 0; warns when a sum is off 1 by
    more than :data:`PSF_SUM_TOLERANCE` (the PSF is then normalised)."""
    kh, kw = psfs.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise BadInputError(
            f"{name} {psfs.shape}: sizes must be odd (the centre pixel is the PSF centre), "
            f"got ({kh}, {kw})"
        )
    nonfinite = ~np.isfinite(psfs)
    if nonfinite.any():
        raise BadInputError(
            f"{name} {psfs.shape}: {int(nonfinite.sum())} NaN/inf value(s), first at "
            f"{_first_index(nonfinite)} ({psfs[tuple(np.argwhere(nonfinite)[0])]})"
        )
    sums = np.atleast_1d(psfs.sum(axis=(-2, -1)))
    where = (lambda b: f"band={b} ") if psfs.ndim == 3 else (lambda b: "")
    if (sums <= 0).any():
        b = int(np.argmax(sums <= 0))
        raise BadInputError(
            f"{name} {psfs.shape}: {where(b)}sums to {sums[b]:g}; a PSF must have a sum > 0"
        )
    off = np.abs(sums - 1) > PSF_SUM_TOLERANCE
    if off.any():
        b = int(np.argmax(off))
        warnings.warn(
            f"{name}: {int(off.sum())} PSF(s) not normalised ({where(b)}sums to {sums[b]:g}); "
            "normalised to sum 1",
            InputWarning,
            stacklevel=3,
        )
    return psfs / sums.reshape(sums.shape + (1, 1)) if psfs.ndim == 3 else psfs / sums[0]


def _bit_value(bad_bits, mask_planes) -> int:
    """The integer value with every bad bit set, from ``bad_bits`` (an int value, or a
    sequence of bit numbers and/or plane names looked up in ``mask_planes``)."""
    if isinstance(bad_bits, (bool, np.bool_)):
        raise BadInputError(f"bad_bits: expected an int or a list of bits/plane names, "
                            f"got {bad_bits!r}")
    if isinstance(bad_bits, (int, np.integer)):
        if bad_bits < 0:
            raise BadInputError(f"bad_bits: a bit value mask must be >= 0, got {bad_bits}")
        return int(bad_bits)
    if isinstance(bad_bits, str):
        bad_bits = [bad_bits]
    planes = {} if mask_planes is None else dict(mask_planes)
    for name, bit in planes.items():
        if not isinstance(bit, (int, np.integer)) or isinstance(bit, (bool, np.bool_)) or not (
            0 <= bit < 64
        ):
            raise BadInputError(f"mask_planes: plane {name!r} has bit {bit!r}; bits are "
                                "integers 0..63")
    value = 0
    for item in bad_bits:
        if isinstance(item, str):
            if item not in planes:
                known = ", ".join(f"{k}={v}" for k, v in sorted(planes.items(),
                                                                key=lambda kv: kv[1]))
                raise BadInputError(
                    f"bad_bits: unknown mask plane {item!r} "
                    + (f"(known planes: {known})" if planes else
                       "(no mask_planes given: pass mask_planes={name: bit} or bit numbers)")
                )
            bit = int(planes[item])
        elif isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            bit = int(item)
            if not 0 <= bit < 64:
                raise BadInputError(f"bad_bits: bit numbers are 0..63, got {bit}")
        else:
            raise BadInputError(f"bad_bits: items are bit numbers or plane names, got {item!r}")
        value |= 1 << bit
    return value


def _set_bits(values: np.ndarray) -> list[int]:
    """Bit numbers set anywhere in the integer array ``values``."""
    combined = int(np.bitwise_or.reduce(values.astype(np.int64).ravel() & ((1 << 63) - 1)))
    return [b for b in range(64) if combined >> b & 1]


def bad_pixels(mask, bad_bits=None, mask_planes=None) -> np.ndarray:
    """Which pixels a mask marks as bad.

    Args:
      mask: a boolean array (True = bad), a 0/1 array, or an integer bit mask (each bit a
        mask plane, as LSST's ``MaskX`` and most survey pipelines write them).
      bad_bits: for an integer bit mask, the bits that make a pixel bad: an int (the bit
        value mask, e.g. ``0b1011``), or a sequence of bit numbers (``[0, 1, 3]``) and/or
        plane names (``["BAD", "SAT"]``, looked up in ``mask_planes``).
      mask_planes: ``{plane name: bit number}`` of the mask (LSST ``MP_<NAME>`` cards).

    Returns:
      A bool array of the mask's shape, True where a pixel is bad.

    Raises:
      BadInputError: a non-numeric mask, an integer mask with values other than 0/1 and no
        ``bad_bits`` (the message says how to choose), ``bad_bits`` given for a boolean
        mask, an unknown plane name, a bit outside 0..63, or a non-integral float mask.
    """
    try:
        arr = np.asarray(mask)
    except (TypeError, ValueError) as err:
        raise BadInputError(f"mask: cannot be read as an array ({err})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise BadInputError(f"mask: expected a boolean array (True = bad) or an integer bit "
                            f"mask, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.bool_):
        if bad_bits is not None:
            raise BadInputError("mask: bad_bits applies to integer bit masks; this mask is "
                                "boolean (True = bad)")
        return arr
    if np.iscomplexobj(arr):
        raise BadInputError(f"mask: complex values (dtype {arr.dtype})")
    if np.issubdtype(arr.dtype, np.floating):
        if not (np.isfinite(arr) & (arr == np.round(arr))).all():
            raise BadInputError(f"mask {arr.shape}: float values that are not integers; "
                                "expected a boolean mask (True = bad) or an integer bit mask")
        arr = arr.astype(np.int64)
    if bad_bits is None:
        if np.isin(arr, (0, 1)).all():
            return arr != 0
        bits = _set_bits(arr)
        names = {int(v): k for k, v in (mask_planes or {}).items()}
        shown = ", ".join(f"{b} ({names[b]})" if b in names else str(b) for b in bits)
        raise BadInputError(
            f"mask {arr.shape}: an integer bit mask (values up to {int(arr.max())}; bits "
            f"{shown} set), not a bad-pixel mask: say which bits are bad with "
            "bad_bits=<bit value mask> or bad_bits=[bit numbers], or plane names with "
            "mask_planes={name: bit}; or pass mask=None"
        )
    value = _bit_value(bad_bits, mask_planes)
    return (arr.astype(np.int64) & value) != 0


def _as_mask(mask, shape: tuple[int, int, int], bad_bits=None, mask_planes=None) -> np.ndarray:
    """(B, H, W) bool from a (B, H, W) or (H, W) mask (see :func:`bad_pixels`)."""
    bad = bad_pixels(mask, bad_bits, mask_planes)
    if bad.shape not in (shape, shape[1:]):
        raise BadInputError(f"mask {bad.shape} does not match images {shape} (or {shape[1:]})")
    return np.broadcast_to(bad, shape)


def make_observation(
    images,
    variance,
    psfs,
    *,
    bands: Sequence[str] | None = None,
    mask=None,
    bad_bits=None,
    mask_planes=None,
    model_psf=None,
    noise_rms=None,
) -> Observation:
    """Validate and package a blend.

    What each kind of bad input gets is listed in the README ("What bad input gets"):
    shapes, dtypes and values that cannot be repaired raise; masked or repairable values are
    repaired with an :class:`~scarlet_jax.errors.InputWarning` saying what was done.

    Args:
      images: (B, H, W) data (a 2-d image is one band); bool and integer input is cast to
        float32; NaN/inf pixels (and values beyond the float32 range) get weight 0.
      variance: (B, H, W) per-pixel variance; NaN, inf, zero or negative values (and values
        whose inverse float32 cannot hold) get weight 0.
      psfs: (B, kh, kw) observed PSFs with odd sizes (a 2-d PSF is used for every band), at
        most (2H - 1, 2W - 1); PSFs not summing to 1 are normalised with a warning.
      bands: B distinct band names (default "0", "1", ...).
      mask: optional (B, H, W) or (H, W) mask: boolean (True = bad pixel, weight 0), 0/1,
        or an integer bit mask together with ``bad_bits`` (see :func:`bad_pixels`). An
        integer mask with other values than 0 and 1 and no ``bad_bits`` raises.
      bad_bits: for an integer bit mask, the bits that mark a bad pixel: an int (bit value
        mask), or a list of bit numbers and/or plane names (with ``mask_planes``).
      mask_planes: optional ``{plane name: bit number}`` naming the mask's bits, as LSST
        ``MaskX`` planes are named (``{"BAD": 0, "SAT": 1, "CR": 3, ...}``).
      model_psf: optional (mh, mw) model PSF with odd sizes; default a pixel-integrated
        circular Gaussian with sigma 0.8 on 15x15 pixels.
      noise_rms: optional (B,) background rms; default mean sqrt(variance) over the valid
        pixels of each band (the mean over the other bands for a band without any).

    Returns:
      An :class:`Observation` with float32 arrays.

    Raises:
      BadInputError: for shapes, dtypes or values that cannot be repaired (mismatched
        shapes or band counts, complex or non-numeric input, no bands, an image smaller
        than half the PSF, NaN/inf or non-positive-sum PSFs, even PSF sizes, every pixel
        masked, data that would overflow the float32 loss); the message names the array,
        its shape and the first offending index.
    """
    images = _as_real_array("images", images, (2, 3))
    if images.ndim == 2:
        images = images[None]
    n_bands, height, width = images.shape
    if n_bands == 0:
        raise BadInputError(f"images {images.shape}: no bands")
    if height == 0 or width == 0:
        raise BadInputError(f"images {images.shape}: empty image")

    variance = _as_real_array("variance", variance, (2, 3))
    if variance.ndim == 2:
        variance = variance[None]
    if variance.shape != images.shape:
        raise BadInputError(f"variance {variance.shape} does not match images {images.shape}")

    psfs = _as_real_array("psfs", psfs, (2, 3))
    if psfs.ndim == 2:
        psfs = np.broadcast_to(psfs, (n_bands,) + psfs.shape).copy()
    if psfs.shape[0] != n_bands:
        raise BadInputError(f"psfs {psfs.shape}: {psfs.shape[0]} bands, images have {n_bands}")
    psfs = _normalised_psfs("psfs", psfs)
    kh, kw = psfs.shape[1:]
    if height < kh // 2 + 1 or width < kw // 2 + 1:
        raise BadInputError(
            f"images {images.shape} are smaller than half the PSF {psfs.shape[1:]} (a PSF "
            f"may be at most {(2 * height - 1, 2 * width - 1)}): crop the PSF or use a "
            "larger cutout"
        )

    if bands is None:
        bands = tuple(str(b) for b in range(n_bands))
    bands = tuple(str(b) for b in bands)
    if len(bands) != n_bands:
        raise BadInputError(f"bands: {len(bands)} names for {n_bands} image bands")
    if len(set(bands)) != n_bands:
        dup = next(b for b in bands if bands.count(b) > 1)
        raise BadInputError(f"bands {bands}: band name {dup!r} appears more than once")

    if mask is None:
        if bad_bits is not None:
            raise BadInputError("bad_bits given without a mask")
        masked = np.zeros(images.shape, dtype=bool)
    else:
        masked = _as_mask(mask, images.shape, bad_bits, mask_planes)
    nonfinite = ~(np.abs(images) <= F32_MAX)  # NaN, inf, and what float32 cannot hold
    if nonfinite.any():
        warnings.warn(
            f"images {images.shape}: {int(nonfinite.sum())} NaN/inf pixel(s), first at "
            f"{_first_index(nonfinite)}; given weight 0",
            InputWarning,
            stacklevel=2,
        )
    badvar = ~((variance >= VARIANCE_MIN) & (variance <= F32_MAX))
    if badvar.any():
        kinds = {
            "NaN/inf": ~np.isfinite(variance),
            "zero": variance == 0,
            "negative": variance < 0,
            "beyond float32": np.isfinite(variance) & badvar & (variance != 0) & (variance > 0),
        }
        counts = ", ".join(f"{int(v.sum())} {k}" for k, v in kinds.items() if v.any())
        first = tuple(np.argwhere(badvar)[0])
        warnings.warn(
            f"variance {variance.shape}: {int(badvar.sum())} bad pixel(s) ({counts}), first "
            f"at {_first_index(badvar)} ({variance[first]:g}); given weight 0",
            InputWarning,
            stacklevel=2,
        )
    bad = masked | nonfinite | badvar
    if bad.all():
        raise BadInputError(
            f"images {images.shape}: every pixel is masked or invalid ({int(masked.sum())} "
            f"masked, {int(nonfinite.sum())} NaN/inf, {int(badvar.sum())} bad variance)"
        )
    empty = bad.all(axis=(1, 2))
    if empty.any():
        idx = np.nonzero(empty)[0].tolist()
        warnings.warn(
            f"images {images.shape}: band(s) {idx} ({[bands[b] for b in idx]}) have no valid "
            "pixel; they get weight 0",
            InputWarning,
            stacklevel=2,
        )

    good = ~bad
    weights = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
    clean = np.where(nonfinite, 0.0, images)
    chi2 = float(np.sum(weights * clean**2))
    if not chi2 <= CHI2_LIMIT:
        raise BadInputError(
            f"images {images.shape}: sum(weights * images**2) = {chi2:.3g} would overflow the "
            f"float32 loss (limit {CHI2_LIMIT:.0e}); rescale the images by a factor c and the "
            "variance by c**2"
        )

    if noise_rms is None:
        rms = np.full(n_bands, np.nan)
        for b in range(n_bands):
            ok = ~badvar[b]  # the variance is usable wherever it is valid, masked or not
            if ok.any():
                rms[b] = np.sqrt(variance[b][ok]).mean()
        noise_rms = np.where(np.isfinite(rms), rms, np.nanmean(rms))
    noise_rms = _as_real_array("noise_rms", noise_rms, (0, 1)).reshape(-1)
    if noise_rms.shape != (n_bands,) or not (np.isfinite(noise_rms) & (noise_rms > 0)).all():
        raise BadInputError(
            f"noise_rms {noise_rms.shape}: need {n_bands} finite values > 0, got "
            f"{noise_rms.tolist()}"
        )

    if model_psf is None:
        model_psf = integrated_circular_gaussian(MODEL_PSF_SIGMA, MODEL_PSF_SIZE)
    model_psf = _normalised_psfs("model_psf", _as_real_array("model_psf", model_psf, (2,)))
    diff_kernel = match_kernel(psfs, model_psf)
    if not np.isfinite(diff_kernel).all():  # cannot happen for finite PSFs; kept as a guard
        raise BadInputError(f"psfs {psfs.shape}: the difference kernel is not finite")

    f32 = np.float32
    with np.errstate(over="ignore"):  # variance beyond float32 becomes inf (weight 0 already)
        variance = variance.astype(f32)
    return Observation(
        images=clean.astype(f32),
        variance=variance,
        weights=weights.astype(f32),
        psfs=psfs.astype(f32),
        model_psf=model_psf.astype(f32),
        diff_kernel=diff_kernel.astype(f32),
        noise_rms=noise_rms.astype(f32),
        bands=bands,
    )


def check_observation(observation: Observation) -> None:
    """Check an :class:`Observation` that may have been built or edited around
    :func:`make_observation` (``dataclasses.replace``, a hand-made instance).

    Raises:
      BadInputError: not an Observation, inconsistent shapes, NaN/inf images, PSFs or
        kernels, NaN/inf or negative weights, no pixel with weight > 0, or a noise_rms
        that is not finite and > 0.
    """
    if not isinstance(observation, Observation):
        raise BadInputError(
            f"expected an Observation (see make_observation), got {type(observation).__name__}"
        )
    arrays = {f.name: np.asarray(getattr(observation, f.name))
              for f in dataclasses.fields(observation) if f.name != "bands"}
    shape = arrays["images"].shape
    if len(shape) != 3 or 0 in shape:
        raise BadInputError(f"images {shape}: expected a non-empty (B, H, W) array")
    for name in ("variance", "weights"):
        if arrays[name].shape != shape:
            raise BadInputError(f"{name} {arrays[name].shape} does not match images {shape}")
    for name in ("psfs", "diff_kernel"):
        if arrays[name].ndim != 3 or arrays[name].shape[0] != shape[0]:
            raise BadInputError(f"{name} {arrays[name].shape}: expected ({shape[0]}, kh, kw)")
    if len(observation.bands) != shape[0]:
        raise BadInputError(f"bands: {len(observation.bands)} names for {shape[0]} bands")
    for name in ("images", "weights", "psfs", "model_psf", "diff_kernel", "noise_rms"):
        nonfinite = ~np.isfinite(arrays[name])
        if nonfinite.any():
            where = _first_index(nonfinite) if arrays[name].ndim in (2, 3) else "index " + str(
                int(np.argmax(nonfinite.ravel())))
            raise BadInputError(
                f"{name} {arrays[name].shape}: {int(nonfinite.sum())} NaN/inf value(s), first "
                f"at {where} (use make_observation, which masks them)"
            )
    weights = arrays["weights"]
    if (weights < 0).any():
        raise BadInputError(
            f"weights {weights.shape}: {int((weights < 0).sum())} negative value(s), first at "
            f"{_first_index(weights < 0)}"
        )
    if not (weights > 0).any():
        raise BadInputError(f"images {shape}: every pixel is masked or invalid (all weights 0)")
    rms = arrays["noise_rms"]
    if rms.shape != (shape[0],) or not (rms > 0).all():
        raise BadInputError(f"noise_rms {rms.shape}: need {shape[0]} values > 0")
