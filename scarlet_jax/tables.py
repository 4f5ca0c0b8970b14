"""Tables of results: per-source measurements and per-input batch rows, as ECSV or CSV.

A table is a list of :class:`Column` (name, values, unit, description) plus a metadata
dict. ECSV (the default) is written without astropy, as the ECSV 1.0 standard describes
it: a YAML header of JSON-style flow mappings, one per column with its ``unit``,
``datatype`` and ``description``, and the ``meta`` mapping, then space-separated rows;
``astropy.table.Table.read(path)`` gives back the units, descriptions and metadata. CSV
has one header line and no units (they are in the ECSV).

Floats are written with the fewest digits that read back to the same value *of their own
precision*: a float32 flux prints as ``32.919704``, not ``32.91970443725586``.
"""

from __future__ import annotations

import csv
import inspect
import io as _io
import json
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._version import __version__
from .measure import Measurement

__all__ = [
    "Column",
    "Table",
    "FLOOR_RELATIVE",
    "PIXEL_CONVENTION",
    "batch_table",
    "source_table",
    "write_table",
]

#: How the tables give positions.
PIXEL_CONVENTION = (
    "0-based pixel indices (y, x): the centre of the first pixel of the image is (0, 0); "
    "add 1 for FITS/ds9 1-based pixels"
)
#: Fluxes below this fraction of their band's noise rms are written as 0: they are the
#: 1e-20 floor the spectra are held at (scarlet lite's), not measurements.
FLOOR_RELATIVE = 1e-6
#: The flux unit written when the input names none.
IMAGE_UNITS = "image units"


class Column(NamedTuple):
    """One table column: ``values`` (N,), its unit ('' when dimensionless) and meaning."""

    name: str
    values: np.ndarray
    unit: str
    description: str


class Table(NamedTuple):
    """Columns of equal length and the table's metadata."""

    columns: list[Column]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.columns[0].values) if self.columns else 0

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


# ------------------------------------------------------------------------- source table

#: How each field of :class:`~scarlet_jax.measure.Measurement` becomes columns:
#: (names for (S,), (S, 2) or (S, B) fields, unit kind, description). Unit kinds: "pix",
#: "flux" (the image unit), "" (dimensionless or a count). A field not listed here is
#: written generically, described from the Measurement docstring.
_FIELDS = {
    "centers": (("y", "x"), "pix", "{axis} of the source center given to (or detected by) "
                "the fit"),
    "n_components": ("n_components", "", "components of the source (1 or 2)"),
    "centroids": (("centroid_y", "centroid_x"), "pix",
                  "{axis} of the flux-weighted centroid of the source's model (model frame, "
                  "summed over bands)"),
    "fluxes": ("flux_{band}", "flux", "model flux of the source in band {band} (model frame, "
               "sum of its components, clipped to the image)"),
    "conserved_fluxes": ("flux_conserved_{band}", "flux",
                         "flux-conserved flux in band {band}: the data re-distributed in "
                         "proportion to the convolved source models (scarlet lite's "
                         "conserve_flux)"),
    "chi2": ("chi2", "", "chi^2 of the blend's model over the source's footprint, summed over "
             "bands"),
    "n_pixels": ("n_pixels", "", "(band, pixel) values with weight > 0 in the source's "
                 "footprint, summed over bands (a pixel counts once per band)"),
    "chi2_per_pixel": ("chi2_per_pixel", "", "chi2 / n_pixels (NaN when n_pixels is 0)"),
}


def _field_docs(cls) -> dict[str, str]:
    """``{attribute: description}`` from a Google-style ``Attributes:`` docstring section."""
    docs: dict[str, str] = {}
    text = inspect.cleandoc(cls.__doc__ or "")
    if "Attributes:" not in text:
        return docs
    indent, name = None, None
    for line in text.split("Attributes:", 1)[1].splitlines():
        if not line.strip():
            if docs:
                name = None
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break  # the next section
        match = re.match(r"^\s*(\w+):\s*(.*)$", line)
        if match and (indent is None or depth == indent):
            indent, name = depth, match.group(1)
            docs[name] = match.group(2).strip()
        elif name is not None:
            docs[name] += " " + line.strip()
    return docs


def _flux_unit(unit: str | None) -> str:
    return unit.strip() if unit and unit.strip() else IMAGE_UNITS


def _symmetric_flags(result, n: int) -> np.ndarray:
    flag = (result.options or {}).get("symmetric", False)
    if isinstance(flag, (list, tuple)):
        if len(flag) == n:
            return np.asarray(flag, bool)
        return np.full(n, False)  # flags given for centers that were merged: not mappable
    return np.full(n, bool(flag))


def _zero_floor(values: np.ndarray, noise_rms: np.ndarray) -> np.ndarray:
    values = np.array(values, copy=True)
    floor = FLOOR_RELATIVE * np.asarray(noise_rms, values.dtype)
    values[np.abs(values) < floor[None, :]] = 0
    return values


def source_table(measurement, result=None, *, unit: str | None = None,
                 meta: dict | None = None) -> Table:
    """The per-source table of a :class:`~scarlet_jax.measure.Measurement`.

    Every field of the measurement becomes columns: (S,) fields one column, (S, 2)
    positions ``_y``/``_x`` columns, (S, B) fields one column per band; fields this module
    does not know (added to ``measure()`` later) are written too, described from the
    ``Measurement`` docstring. Fluxes below ``FLOOR_RELATIVE`` times their band's noise
    rms are written as 0 (they are the spectra's 1e-20 floor).

    Args:
      measurement: the output of :func:`~scarlet_jax.measure.measure`.
      result: the :class:`~scarlet_jax.result.DeblendResult` measured (for the noise
        level, the ``symmetric`` column and the metadata); optional.
      unit: the image (flux) unit; default ``"image units"``.
      meta: extra metadata (input file, options, ...).

    Returns:
      A :class:`Table` with columns ``source``, ``y``, ``x``, ``n_components``,
      ``centroid_y``, ``centroid_x``, ``flux_<band>``..., ``flux_conserved_<band>``...,
      ``chi2``, ``n_pixels``, ``chi2_per_pixel``, any further fields, and ``symmetric``
      (when ``result`` is given).
    """
    m = measurement
    bands = tuple(m.bands)
    n = int(np.asarray(m.centers).shape[0])
    flux_unit = _flux_unit(unit)
    docs = {**_field_docs(Measurement), **_field_docs(type(m))}
    noise = None if result is None else np.asarray(result.observation.noise_rms)
    cols = [Column("source", np.arange(n, dtype=np.int32), "", "source index (row of the "
                   "input catalog, after merging duplicates)")]
    for field in m._fields:
        if field == "bands":
            continue
        values = np.asarray(getattr(m, field))
        names, kind, text = _FIELDS.get(field, (field, "", None))
        unit_s = {"pix": "pix", "flux": flux_unit, "": ""}[kind]
        if text is None:
            text = docs.get(field, f"measure() field {field!r}")
        if kind == "flux" and noise is not None and values.ndim == 2:
            values = _zero_floor(values, noise)
        if values.ndim == 1:
            cols.append(Column(names if isinstance(names, str) else field, values, unit_s,
                               text))
        elif values.ndim == 2 and isinstance(names, tuple) and values.shape[1] == len(names):
            for i, name in enumerate(names):
                cols.append(Column(name, values[:, i], unit_s,
                                   text.format(axis="yx"[i] if len(names) == 2 else i)))
        elif values.ndim == 2 and values.shape[1] == len(bands):
            pattern = names if isinstance(names, str) and "{band}" in names else field + "_{band}"
            for b, band in enumerate(bands):
                cols.append(Column(pattern.format(band=band), values[:, b], unit_s,
                                   text.format(band=band) if "{band}" in text
                                   else f"{text} (band {band})"))
        else:  # any other shape: flattened per source, numbered
            flat = values.reshape(n, -1)
            for i in range(flat.shape[1]):
                cols.append(Column(f"{field}_{i}", flat[:, i], unit_s, f"{text} [{i}]"))
    if result is not None:
        cols.append(Column("symmetric", _symmetric_flags(result, n), "",
                           "whether the fit made the source's components symmetric about "
                           "their peaks"))
    info = {
        "flux_unit": flux_unit,
        "bands": list(bands),
        "pixel_convention": PIXEL_CONVENTION,
        "n_pixels": "summed over bands: a pixel with weight > 0 in every band counts B times",
        "flux_floor": f"fluxes below {FLOOR_RELATIVE:g} x the band's noise rms are written "
                      "as 0 (the spectra's 1e-20 floor)",
    }
    if result is not None:
        info.update(status=result.status, n_iter=int(result.n_iter),
                    chi2_per_pixel=_finite(result.chi2_per_pixel())
                    if result.error is None else None)
    return Table(cols, {**_tool_meta(), **info, **(meta or {})})


def batch_table(rows: list[dict], meta: dict | None = None) -> Table:
    """The per-input table of a batch: one row per input file.

    Args:
      rows: one dict per input with keys ``input``, ``status``, ``n_sources``,
        ``n_components``, ``n_iter``, ``chi2_per_pixel``, ``time_s``, ``result``, ``error``.
      meta: extra metadata.
    """
    spec = (
        ("input", "", "input file", str),
        ("status", "", "converged, max_iter, diverged, or failed (see error)", str),
        ("n_sources", "", "sources deblended", np.int32),
        ("n_components", "", "components fitted", np.int32),
        ("n_iter", "", "iterations run", np.int32),
        ("chi2_per_pixel", "", "chi^2 of the model per (band, pixel) value with weight > 0 "
         "(NaN for a failed input)", np.float32),
        ("result", "", "result file written (empty for a failed input)", str),
        ("error", "", "why the input failed (empty otherwise)", str),
    )
    cols = []
    for name, unit, text, dtype in spec:
        values = [r.get(name, "" if dtype is str else np.nan) for r in rows]
        cols.append(Column(name, np.asarray(values, dtype=object if dtype is str else dtype),
                           unit, text))
    return Table(cols, {**_tool_meta(), "pixel_convention": PIXEL_CONVENTION, **(meta or {})})


def _tool_meta() -> dict:
    return {"tool": "scarlet_jax", "version": __version__}


def _finite(value: float):
    return float(value) if math.isfinite(value) else None


# -------------------------------------------------------------------------------- writers


def _datatype(values: np.ndarray) -> str:
    if values.dtype == bool:
        return "bool"
    if values.dtype.kind in "iu":
        return str(values.dtype)
    if values.dtype.kind == "f":
        return "float32" if values.dtype == np.float32 else "float64"
    return "string"


def _format(value, datatype: str) -> str:
    """One cell: the shortest text that reads back to the value at its own precision."""
    if datatype == "bool":
        return "True" if bool(value) else "False"
    if datatype.startswith(("int", "uint")):
        return str(int(value))
    if datatype.startswith("float"):
        v = np.float32(value) if datatype == "float32" else np.float64(value)
        if not np.isfinite(v):
            return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        if v == 0:
            return "0.0"
        if 1e-4 <= abs(v) < 1e7:
            return np.format_float_positional(v, unique=True, trim="0")
        return np.format_float_scientific(v, unique=True, trim="-")
    return "" if value is None else str(value)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _ecsv_text(table: Table) -> str:
    out = _io.StringIO()
    out.write("# %ECSV 1.0\n# ---\n# datatype:\n")
    for c in table.columns:
        entry = {"name": c.name}
        if c.unit:
            entry["unit"] = c.unit
        entry["datatype"] = _datatype(np.asarray(c.values))
        entry["description"] = c.description
        out.write(f"# - {json.dumps(entry)}\n")
    out.write(f"# meta: {json.dumps(_json_safe(table.meta), sort_keys=False)}\n")
    out.write("# schema: astropy-2.0\n")
    out.write(" ".join(_quote(n) for n in table.names) + "\n")
    types = [_datatype(np.asarray(c.values)) for c in table.columns]
    for i in range(len(table)):
        cells = [_format(c.values[i], t) for c, t in zip(table.columns, types, strict=True)]
        out.write(" ".join(_quote(x) if t == "string" else x for x, t in zip(cells, types,
                                                                            strict=True)) + "\n")
    return out.getvalue()


def _quote(text: str) -> str:
    """An ECSV (space-delimited) cell: quoted when empty or holding a space or a quote."""
    if text == "" or any(ch in text for ch in ' "\t'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_table(table: Table, path, fmt: str = "ecsv") -> Path:
    """Write a :class:`Table` as ECSV (units, descriptions, metadata) or CSV.

    Args:
      table: the table.
      path: target file; its suffix is replaced by ``.ecsv`` or ``.csv``.
      fmt: "ecsv" or "csv".

    Returns:
      The path written.
    """
    if fmt not in ("ecsv", "csv"):
        raise ValueError(f"fmt must be 'ecsv' or 'csv', got {fmt!r}")
    path = Path(path).with_suffix("." + fmt)
    if fmt == "ecsv":
        text = _ecsv_text(table)
    else:
        buf = _io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.names)
        types = [_datatype(np.asarray(c.values)) for c in table.columns]
        for i in range(len(table)):
            writer.writerow([_format(c.values[i], t)
                             for c, t in zip(table.columns, types, strict=True)])
        text = buf.getvalue()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
