"""Source and batch tables: units, descriptions, metadata, float formatting, floors."""

from __future__ import annotations

import csv
import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
from _ecsv import read_ecsv

from scarlet_jax import tables
from scarlet_jax.measure import Measurement, measure


@pytest.fixture(scope="module")
def fitted(hsc):
    from scarlet_jax import deblend

    obs, centers = hsc
    result = deblend(obs, centers, max_iter=10, symmetric=[True] + [False] * 6)
    return result, measure(result)


def test_ecsv_has_units_descriptions_and_metadata(fitted, tmp_path):
    result, m = fitted
    table = tables.source_table(m, result, unit="nJy", meta={"input": "blend.npz"})
    path = tables.write_table(table, tmp_path / "sources")
    assert path.suffix == ".ecsv"
    rows, columns, meta = read_ecsv(path)
    units = {c["name"]: c.get("unit", "") for c in columns}
    assert all(c["description"] for c in columns)
    assert units["flux_g"] == units["flux_conserved_y"] == "nJy"
    assert units["y"] == units["centroid_x"] == "pix"
    assert "summed over bands" in next(c["description"] for c in columns
                                       if c["name"] == "n_pixels")
    for key in ("tool", "version", "bands", "pixel_convention", "status", "input"):
        assert key in meta, key
    assert meta["bands"] == ["g", "r", "i", "z", "y"] and "0-based" in meta["pixel_convention"]
    assert [r["symmetric"] for r in rows] == ["True"] + ["False"] * 6
    no_unit = tables.source_table(m, result)
    assert no_unit.column("flux_r").unit == "image units"
    astropy_table = pytest.importorskip("astropy.table")
    back = astropy_table.Table.read(path, format="ascii.ecsv")
    assert str(back["flux_g"].unit) == "nJy" and back["y"].unit == "pix"
    assert back["chi2"].description and back.meta["status"] == result.status
    np.testing.assert_array_equal(np.asarray(back["flux_r"]), table.column("flux_r").values)


def test_csv_floats_have_their_own_precision_and_floors_are_zero(fitted, tmp_path):
    result, m = fitted
    fluxes = np.array(m.fluxes)
    fluxes[6, 0] = 4.7e-20  # a spectrum at its floor
    m = m._replace(fluxes=fluxes)
    path = tables.write_table(tables.source_table(m, result), tmp_path / "s", "csv")
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert rows[6]["flux_g"] == "0.0"
    for r in rows:
        for k in ("flux_i", "chi2_per_pixel", "centroid_y"):
            assert float(np.float32(r[k])) == float(np.float32(float(r[k])))
            assert len(r[k].lstrip("-").replace(".", "").split("e")[0].lstrip("0")) <= 9
    assert tables._format(np.float32(32.91970443725586), "float32") == "32.919704"
    assert tables._format(np.float64(0.1), "float64") == "0.1"


def test_new_measure_fields_become_described_columns(fitted):
    """measure() may gain fields (per-source flags): they must reach the table."""
    result, m = fitted

    class Extended(NamedTuple):
        """Measurement plus flags.

        Attributes:
          bands: the band names.
          centers: (S, 2) centers.
          flags: (S,) int32 per-source quality flags (bit 0: at the edge).
        """

        bands: tuple
        centers: np.ndarray
        flags: np.ndarray

    extended = Extended(m.bands, m.centers, np.arange(7, dtype=np.int32))
    table = tables.source_table(extended, result)
    flags = table.column("flags")
    assert flags.values.tolist() == list(range(7))
    assert flags.description.startswith("(S,) int32 per-source quality flags")


def test_batch_table_describes_every_column(tmp_path):
    rows = [dict(input="a.npz", status="converged", n_sources=2, n_components=3, n_iter=40,
                 chi2_per_pixel=1.1, result="a.result.npz", error=""),
            dict(input="b npz", status="failed", n_sources=0, n_components=0, n_iter=0,
                 chi2_per_pixel=float("nan"), result="", error="b npz: truncated")]
    path = tables.write_table(tables.batch_table(rows, {"n_failed": 1}), tmp_path / "batch")
    back, columns, meta = read_ecsv(path)
    assert [r["input"] for r in back] == ["a.npz", "b npz"]
    assert back[1]["error"] == "b npz: truncated" and back[0]["error"] == ""
    assert all(c["description"] for c in columns) and meta["n_failed"] == 1


def test_failed_result_table(fitted):
    result, m = fitted
    empty = m._replace(centers=np.zeros((0, 2), np.float32),
                       fluxes=np.zeros((0, 5), np.float32),
                       conserved_fluxes=np.zeros((0, 5), np.float32),
                       centroids=np.zeros((0, 2), np.float32), chi2=np.zeros(0, np.float32),
                       n_pixels=np.zeros(0, np.int32), chi2_per_pixel=np.zeros(0, np.float32),
                       n_components=np.zeros(0, np.int32))
    failed = dataclasses.replace(result, centers=np.zeros((0, 2), np.float32), error="bad")
    table = tables.source_table(empty, failed)
    assert len(table) == 0 and table.meta["status"] == "failed"
    assert isinstance(empty, Measurement)


def test_batch_table_of_inputs_with_other_bands_keeps_float32(tmp_path):
    """The CLI's stacked source table: an input without the first input's bands gets NaN in
    those columns, and the float32 columns stay float32 (short float32 digits in the file)."""
    from scarlet_jax.cli import _stack_sources

    def table(band, flux):
        return tables.Table([tables.Column(f"flux_{band}", np.float32([flux]), "flux", "f")],
                            {"input": "x"})

    stacked = _stack_sources([("a.npz", table("g", 1.1)), ("b.npz", table("r", 2.2))], {})
    flux_g = stacked.column("flux_g").values
    assert flux_g.dtype == np.float32
    assert flux_g[0] == np.float32(1.1) and np.isnan(flux_g[1])
    text = tables.write_table(stacked, tmp_path / "s.ecsv").read_text()
    assert '"name": "flux_g", "unit": "flux", "datatype": "float32"' in text
    assert "1.1" in text and "1.100000023841858" not in text
