"""Reading blends from files: ``.npz`` and FITS inputs, and source catalogs.

The formats (also in the README, "Input files"):

* **npz**: ``images`` (B, H, W), ``variance`` (B, H, W), ``psfs`` (B, kh, kw) (odd sizes);
  optional ``mask`` ((B, H, W) or (H, W): boolean/0-1, True = bad, or an integer bit
  mask), ``mask_planes`` (a JSON string ``{"BAD": 0, "SAT": 1, ...}`` naming the mask's
  bits), ``bands`` or ``filters`` (B names), ``catalog`` (a structured array with fields
  ``y``, ``x``) or ``centers`` ((S, 2) (y, x)), ``unit`` (the image unit, a string).
* **FITS** (``fits`` extra): image extensions ``IMAGES``, ``VARIANCE``, ``PSFS`` and
  optional ``MASK`` (header cards ``MP_<NAME> = bit`` name its planes, as LSST writes
  them) and a table ``CATALOG`` with columns ``y``, ``x``; band names in the ``IMAGES``
  header keyword ``BANDS`` (``"g,r,i"``), the unit in its ``BUNIT``.
* **catalogs**: CSV, ECSV or FITS tables with columns ``y`` and ``x``, and optionally
  ``symmetric`` (True/False per source: make that source symmetric).

Coordinates are 0-based pixel indices (y, x): the centre of the first pixel is (0, 0), as
numpy indexes arrays (add 1 for FITS/ds9 1-based pixels, and swap for (x, y)).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import BadInputError, InputWarning
from .observation import bad_pixels, make_observation

__all__ = [
    "DEFAULT_BAD_PLANES",
    "LSST_MASK_PLANES",
    "Blend",
    "BlendFile",
    "is_input_file",
    "read_arrays",
    "read_blend",
    "read_catalog",
]

#: The mask planes every LSST ``afw`` mask starts with (bits 0-8); other planes a pipeline
#: adds (``CLIPPED``, ``REJECTED``, ...) get later bits that vary between data sets.
LSST_MASK_PLANES: dict[str, int] = {
    "BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5,
    "DETECTED_NEGATIVE": 6, "SUSPECT": 7, "NO_DATA": 8,
}

#: Planes that make a pixel bad when an input names its planes and no ``bad_bits`` are
#: chosen: the LSST deblender's default ``badMask``. Pixels with no usable data (BAD,
#: NO_DATA), a clipped or non-linear response (SAT, SUSPECT), cosmic rays (CR) and the
#: detector edge (EDGE). INTRP (interpolated, usually over CR or BAD pixels) is kept, as
#: the LSST deblender keeps it; DETECTED and friends are not defects.
DEFAULT_BAD_PLANES: tuple[str, ...] = ("BAD", "CR", "NO_DATA", "SAT", "SUSPECT", "EDGE")

_FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fts")


class BlendFile(NamedTuple):
    """The arrays of an input file, as read (no validation beyond the layout)."""

    images: np.ndarray
    variance: np.ndarray
    psfs: np.ndarray
    mask: np.ndarray | None
    mask_planes: dict[str, int] | None
    bands: list[str] | None
    centers: np.ndarray | None
    unit: str | None
    symmetric: np.ndarray | None = None


class Blend(NamedTuple):
    """A blend ready to deblend.

    Attributes:
      observation: the :class:`~scarlet_jax.observation.Observation`.
      centers: (S, 2) float64 (y, x) source centers, or None to detect them.
      unit: the image unit (FITS ``BUNIT`` or the npz ``unit``), or None.
      mask: what was done with the file's mask, in words (for logs and table metadata).
      path: the file read.
      symmetric: (S,) bool per-source symmetry flags from the catalog's ``symmetric``
        column, or None.
    """

    observation: Any
    centers: np.ndarray | None
    unit: str | None
    mask: str
    path: Path
    symmetric: np.ndarray | None = None


def _bad(message: str) -> BadInputError:
    return BadInputError(message)


def _is_fits(path: Path) -> bool:
    return "".join(path.suffixes).lower().endswith(_FITS_SUFFIXES)


def is_input_file(path) -> bool:
    """Whether a path names a blend input (``.npz`` or FITS, and not a result file)."""
    path = Path(path)
    name = path.name.lower()
    return (name.endswith(".npz") or _is_fits(path)) and not name.endswith(".result.npz")


# ------------------------------------------------------------------------------- catalogs


def _symmetric_from_columns(columns: dict, where: str) -> np.ndarray | None:
    """Per-source symmetry flags from an optional ``symmetric`` column (bool, 0/1 or
    true/false text), or None."""
    lower = {str(k).lower(): k for k in columns}
    if "symmetric" not in lower:
        return None
    values = np.asarray(columns[lower["symmetric"]]).reshape(-1)
    if values.dtype.kind in "US":
        text = np.char.lower(np.char.strip(values.astype(str)))
        ok = np.isin(text, ("true", "false", "1", "0", "yes", "no"))
        if not ok.all():
            raise _bad(f"{where}: column symmetric holds {values[~ok][0]!r}; use True/False")
        return np.isin(text, ("true", "1", "yes"))
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), 0, values)
    if values.dtype.kind not in "biuf" or not np.isin(values, (0, 1)).all():
        raise _bad(f"{where}: column symmetric must hold True/False (or 1/0)")
    return values.astype(bool)


def _centers_from_columns(columns: dict, where: str) -> np.ndarray:
    lower = {str(k).lower(): k for k in columns}
    if "y" not in lower or "x" not in lower:
        raise _bad(f"{where}: the catalog needs columns 'y' and 'x', found {sorted(columns)}")
    try:
        y = np.asarray(columns[lower["y"]], dtype=np.float64).reshape(-1)
        x = np.asarray(columns[lower["x"]], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise _bad(f"{where}: catalog columns y, x are not numbers ({err})") from None
    return np.stack([y, x], axis=1)


def _read_ecsv_plain(path: Path) -> dict:
    """A minimal ECSV reader (no astropy): '#' lines are the header, the first other line
    holds the column names; the delimiter is a space unless the header says ','."""
    text = path.read_text().splitlines()
    delimiter = None
    for line in text:
        if line.startswith("#") and "delimiter:" in line and "','" in line:
            delimiter = ","
    rows = [line for line in text if line.strip() and not line.startswith("#")]
    if not rows:
        raise _bad(f"{path}: empty catalog")
    names = rows[0].split(delimiter)
    values = [r.split(delimiter) for r in rows[1:]]
    return {n: np.array([v[i] for v in values]) for i, n in enumerate(names)}


def read_catalog(path) -> np.ndarray:
    """Source centers (S, 2) float64 (y, x) from a CSV, ECSV or FITS table with columns
    ``y`` and ``x`` (0-based pixels).

    Raises:
      FileNotFoundError: no such file.
      BadInputError: unreadable, or without columns y and x (the message names the file).
    """
    return _read_catalog(path)[0]


def _columns(columns: dict, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    return _centers_from_columns(columns, where), _symmetric_from_columns(columns, where)


def _read_catalog(path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(centers (S, 2) (y, x), symmetric (S,) bool or None)`` of a catalog file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    suffixes = "".join(path.suffixes).lower()
    try:
        if _is_fits(path) or suffixes.endswith(".ecsv"):
            try:
                from astropy.table import Table
            except ImportError:
                if suffixes.endswith(".ecsv"):
                    return _columns(_read_ecsv_plain(path), str(path))
                raise _bad(
                    f"{path}: FITS tables need astropy (pip install 'scarlet-jax[fits]')"
                ) from None
            table = Table.read(path)
            return _columns({n: table[n] for n in table.colnames}, str(path))
        data = np.genfromtxt(path, delimiter=",", names=True, dtype=None, ndmin=1,
                             encoding="utf-8")
        if data.dtype.names is None:
            raise _bad(f"{path}: no header line with column names")
        return _columns({n: data[n] for n in data.dtype.names}, str(path))
    except BadInputError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as err:
        raise _bad(f"{path}: cannot read the catalog ({type(err).__name__}: {err})") from None


def _catalog_array(value, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    value = np.asarray(value)
    if value.dtype.names:
        return _columns({n: value[n] for n in value.dtype.names}, where)
    if value.ndim == 2 and value.shape[1] == 2 and np.issubdtype(value.dtype, np.number):
        return value.astype(np.float64), None  # (S, 2) (y, x)
    raise _bad(f"{where}: catalog must have fields y, x or shape (S, 2) (y, x), got "
               f"{value.shape} {value.dtype}")


# --------------------------------------------------------------------------------- arrays


def _planes(value, where: str) -> dict[str, int]:
    """``{name: bit}`` from a JSON text (npz ``mask_planes``) or a mapping."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise _bad(f"{where}: mask_planes is not JSON ({err})") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 64
        for k, v in value.items()
    ):
        raise _bad(f"{where}: mask_planes must map plane names to bit numbers 0..63, "
                   f"e.g. {{\"BAD\": 0, \"SAT\": 1}}, got {value!r:.200}")
    return {str(k): int(v) for k, v in value.items()}


def _text(value) -> str:
    value = np.asarray(value)
    return str(value.item() if value.ndim == 0 else value.tolist())


def _read_npz(path: Path) -> BlendFile:
    with open(path, "rb") as fh:  # closed even when numpy gives up half-way
        head = fh.read(6)
        if not head:
            raise _bad(f"{path}: empty file, expected an npz with images, variance, psfs")
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
            # numpy would call any other file "pickled data", which it rarely is
            raise _bad(f"{path}: not an npz file (it does not start with a zip header; "
                       "expected an npz with images, variance, psfs)")
        fh.seek(0)
        try:
            data = np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise _bad(f"{path}: not a readable npz file ({type(err).__name__}: {err})"
                       ) from None
        if not hasattr(data, "files"):
            raise _bad(f"{path}: a single .npy array, expected an npz with images, variance, "
                       "psfs")
        with data:
            try:
                arrays = {k: data[k] for k in data.files}
            except Exception as err:  # truncated or corrupted members: zlib, CRC, npy headers
                raise _bad(f"{path}: unreadable npz member ({type(err).__name__}: {err}); "
                           "the file is truncated or corrupted") from None
    if "metadata" in arrays and "observation.images" in arrays:
        raise _bad(f"{path}: this is a result file; use 'scarlet-jax show {path}'")
    missing = [k for k in ("images", "variance", "psfs") if k not in arrays]
    if missing:
        raise _bad(f"{path}: missing array(s) {missing} (has {sorted(arrays)})")
    bands = arrays.get("bands", arrays.get("filters"))
    centers = flags = None
    for key in ("catalog", "centers"):
        if key in arrays:
            centers, flags = _catalog_array(arrays[key], f"{path}[{key}]")
            break
    planes = _planes(arrays["mask_planes"], str(path)) if "mask_planes" in arrays else None
    unit = _text(arrays["unit"]) if "unit" in arrays else None
    return BlendFile(arrays["images"], arrays["variance"], arrays["psfs"], arrays.get("mask"),
                     planes, None if bands is None else [str(b) for b in np.ravel(bands)],
                     centers, unit, flags)


def _fits_planes(header) -> dict[str, int] | None:
    planes = {}
    for key in header:
        if key.upper().startswith("MP_"):
            bit = header[key]
            if isinstance(bit, int) and not isinstance(bit, bool):
                planes[key[3:].upper()] = int(bit)
    return planes or None


def _read_fits(path: Path) -> BlendFile:
    try:
        from astropy.io import fits
    except ImportError:
        raise _bad(f"{path}: FITS input needs astropy (pip install 'scarlet-jax[fits]')") from None
    try:
        with fits.open(path) as hdul:
            names = [h.name.upper() for h in hdul]
            missing = [k for k in ("IMAGES", "VARIANCE", "PSFS") if k not in names]
            if missing:
                raise _bad(f"{path}: missing extension(s) {missing} (has {names})")
            images = np.asarray(hdul["IMAGES"].data)
            variance = np.asarray(hdul["VARIANCE"].data)
            psfs = np.asarray(hdul["PSFS"].data)
            header = hdul["IMAGES"].header
            mask = planes = None
            if "MASK" in names:
                mask = np.asarray(hdul["MASK"].data)
                planes = _fits_planes(hdul["MASK"].header) or _fits_planes(hdul[0].header)
            bands = None
            if "BANDS" in header:
                bands = [b.strip() for b in str(header["BANDS"]).split(",")]
            unit = str(header["BUNIT"]).strip() if "BUNIT" in header else None
            centers = flags = None
            if "CATALOG" in names:
                table = hdul["CATALOG"].data
                if table is None or not hasattr(table, "names"):
                    raise _bad(f"{path}: CATALOG is not a table with columns y, x")
                centers, flags = _columns({n: table[n] for n in table.names},
                                          f"{path}[CATALOG]")
    except BadInputError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError) as err:
        raise _bad(f"{path}: not a readable FITS file ({type(err).__name__}: {err})") from None
    return BlendFile(images, variance, psfs, mask, planes, bands, centers, unit or None, flags)


def read_arrays(path) -> BlendFile:
    """Read an input file's arrays (npz, or FITS by its suffix) without validating them.

    Raises:
      FileNotFoundError: no such file.
      BadInputError: a folder, an unreadable, truncated or corrupted file, a missing
        array or extension, a result file; the message starts with the file name.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise _bad(f"{path}: is a folder (use 'scarlet-jax batch' for folders)")
    return _read_fits(path) if _is_fits(path) else _read_npz(path)


# ----------------------------------------------------------------------------------- mask


def _choose_mask(raw: BlendFile, path: Path, use_mask: bool, bad_bits, mask_planes):
    """``(mask, bad_bits, planes, note)`` for :func:`make_observation` (see read_blend)."""
    if raw.mask is None or not use_mask:
        note = "none in the file" if raw.mask is None else "ignored (--no-mask)"
        return None, None, None, note
    planes = dict(raw.mask_planes or {})
    planes.update(mask_planes or {})
    mask = np.asarray(raw.mask)
    if bad_bits is not None:
        if isinstance(bad_bits, str):
            bad_bits = [bad_bits]
        if not isinstance(bad_bits, (int, np.integer)):
            expanded = []
            for item in bad_bits:
                if isinstance(item, str) and item.lower() == "default":
                    expanded += [p for p in DEFAULT_BAD_PLANES if p in planes]
                else:
                    expanded.append(item)
            bad_bits = expanded
        bad = bad_pixels(mask, bad_bits, planes)
        return mask, bad_bits, planes, f"bad bits {bad_bits} ({bad.mean():.1%} of the pixels)"
    if mask.dtype == bool or np.isin(mask, (0, 1)).all():
        return mask, None, None, f"bad-pixel mask ({np.mean(mask != 0):.1%} of the pixels)"
    chosen = [p for p in DEFAULT_BAD_PLANES if p in planes]
    if chosen:
        bad = bad_pixels(mask, chosen, planes)
        return mask, chosen, planes, (f"planes {', '.join(chosen)} ({bad.mean():.1%} of the "
                                      "pixels; the default bad planes)")
    try:  # the message of bad_pixels lists the bits that are set
        bad_pixels(mask, None, planes)
    except BadInputError as err:
        detail = str(err).split(": ", 1)[-1].split(", not a bad-pixel mask")[0]
    else:  # pragma: no cover - a 0/1 mask returned above
        detail = "an integer mask"
    names = "names no planes" if not planes else (
        f"names planes {sorted(planes)} but none of the default bad planes "
        f"{list(DEFAULT_BAD_PLANES)}")
    raise _bad(
        f"{path}: the mask is {detail}, and the file {names}: say which bits are bad with "
        "--bad-bits (bit numbers, e.g. --bad-bits 0,1,3,4,7,8, or plane names), or name the "
        "planes with --mask-planes (--mask-planes lsst for LSST/HSC masks: then BAD, CR, "
        "NO_DATA, SAT, SUSPECT, EDGE are bad), or ignore the mask with --no-mask "
        "(in Python: read_blend(path, bad_bits=...) or use_mask=False)"
    )


def read_blend(
    path,
    *,
    catalog=None,
    detect: bool = False,
    use_mask: bool = True,
    bad_bits=None,
    mask_planes: dict[str, int] | None = None,
) -> Blend:
    """Read and validate one blend from an ``.npz`` or FITS file (see the module docstring).

    The mask: a boolean or 0/1 mask is applied as it is (True = bad). An integer bit mask
    needs to know which bits are bad: ``bad_bits`` (an int bit value mask, or a list of bit
    numbers and/or plane names; ``"default"`` stands for :data:`DEFAULT_BAD_PLANES`), or,
    when the file (or ``mask_planes``) names its planes, the planes of
    :data:`DEFAULT_BAD_PLANES` that it names. Otherwise it is refused.

    Args:
      path: the input file.
      catalog: optional catalog file (CSV/ECSV/FITS table with columns y, x); it overrides
        a catalog inside the input.
      detect: ignore any catalog: the sources are to be detected (``centers`` is None).
      use_mask: apply the input's mask.
      bad_bits: which bits of an integer mask are bad (see above).
      mask_planes: ``{name: bit}`` added to (and overriding) the planes the file names.

    Returns:
      A :class:`Blend`.

    Raises:
      FileNotFoundError: no such file.
      BadInputError: an unreadable or invalid input, an integer mask without a choice of
        bits; the message starts with the file name. Repairs made by
        :func:`~scarlet_jax.make_observation` are warned about as ``InputWarning`` with
        the file name in front.
    """
    path = Path(path)
    raw = read_arrays(path)
    centers, flags = _read_catalog(catalog) if catalog is not None else (raw.centers,
                                                                           raw.symmetric)
    if detect:
        centers = flags = None
    try:
        mask, bits, planes, note = _choose_mask(raw, path, use_mask, bad_bits, mask_planes)
    except BadInputError as err:
        raise err if str(err).startswith(str(path)) else _bad(f"{path}: {err}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obs = make_observation(raw.images, raw.variance, raw.psfs, bands=raw.bands,
                                   mask=mask, bad_bits=bits, mask_planes=planes)
        except BadInputError as err:
            raise _bad(f"{path}: {err}") from None
    for w in caught:
        category = w.category if issubclass(w.category, Warning) else InputWarning
        warnings.warn(f"{path}: {w.message}", category, stacklevel=2)
    return Blend(obs, centers, raw.unit, note, path, flags)
