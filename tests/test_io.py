"""Result files (npz) and scarlet lite's JSON model layout."""

from __future__ import annotations

import dataclasses
import io as _io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REFERENCE

from scarlet_jax import io
from scarlet_jax.errors import BadFileError, BadInputError
from scarlet_jax.result import DeblendResult

LITE_JSON = REFERENCE / "hsc_cosmos_35_lite_model.json"
MAX_ITER = 15  # as test_api and the CLI demo test: one fit program, compiled once per run


@pytest.fixture(scope="module")
def result(hsc):
    from scarlet_jax import deblend

    obs, centers = hsc
    return deblend(obs, centers, max_iter=MAX_ITER)


@pytest.fixture(scope="module")
def lite_json(require_file):
    require_file(LITE_JSON)
    with open(LITE_JSON) as fh:
        return json.load(fh)


def assert_results_equal(a: DeblendResult, b: DeblendResult):
    for f in dataclasses.fields(DeblendResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "observation":
            assert x.bands == y.bands and isinstance(y.bands, tuple)
            for name in io._observation_fields():
                u, v = getattr(x, name), getattr(y, name)
                assert u.dtype == v.dtype and u.shape == v.shape, name
                np.testing.assert_array_equal(u, v, err_msg=name)
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert type(x) is type(y) and x == y, f.name


# ------------------------------------------------------------------------------ npz files


def test_round_trip_is_exact(result, tmp_path):
    path = io.save(result, tmp_path / "r.npz")
    assert path == tmp_path / "r.npz"
    back = io.load(path)
    assert_results_equal(result, back)
    assert back.options == result.options and back.status == result.status
    np.testing.assert_array_equal(back.model, result.model)
    # plain numpy reads it, without pickles
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["metadata"]))
        assert set(f.files) == set(meta["arrays"]) | {"metadata"}
    assert meta["schema_version"] == io.SCHEMA_VERSION
    assert meta["bands"] == list(result.observation.bands)
    assert meta["shape"] == list(result.observation.shape)
    assert meta["fields"]["n_iter"] == result.n_iter
    assert set(meta["arrays"]) >= {"observation.images", "observation.diff_kernel",
                                   "result.morphs", "result.loss"}
    for spec in meta["arrays"].values():
        assert len(spec["sha256"]) == 64


def test_round_trip_odd_options_and_failed_result(result, tmp_path):
    odd = dataclasses.replace(
        result,
        options={**result.options, "t": (1, 2.5, "a"), "nested": {"k": [1, None, True]},
                 "nan": float("nan")},
        error="centers: source 3 outside the image",
        converged=False,
    )
    back = io.load(io.save(odd, tmp_path / "odd.npz"))
    assert back.options["t"] == (1, 2.5, "a") and isinstance(back.options["t"], tuple)
    assert back.options["nested"] == {"k": [1, None, True]}
    assert np.isnan(back.options["nan"])
    assert back.status == "failed" and back.error == odd.error
    with pytest.raises(BadInputError, match="options.bad"):
        io.save(dataclasses.replace(result, options={"bad": object()}), tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "nope.npz")
    text = tmp_path / "text.npz"
    text.write_text("hello, I am not a zip file\n" * 10)
    with pytest.raises(BadFileError, match="not a scarlet_jax result file"):
        io.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, images=np.zeros((2, 3)))
    with pytest.raises(BadFileError, match="no metadata"):
        io.load(plain)
    with pytest.raises(BadFileError, match="folder"):
        io.load(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.02])
def test_truncated_file(result, tmp_path, keep):
    path = io.save(result, tmp_path / "r.npz")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BadFileError, match="truncated|corrupted"):
        io.load(path)


def _member_data_offset(path: Path, member: str) -> tuple[int, int]:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), "<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.file_size


def test_bit_flip_in_array_data(result, tmp_path):
    path = io.save(result, tmp_path / "r.npz")
    start, size = _member_data_offset(path, "result.morphs.npy")
    data = bytearray(path.read_bytes())
    data[start + size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(BadFileError, match="corrupted"):
        io.load(path)


def test_random_bit_flips_are_caught_or_harmless(result, tmp_path):
    """Wherever a bit flips, load either refuses the file or returns the same result."""
    path = io.save(result, tmp_path / "r.npz")
    clean = path.read_bytes()
    rng = np.random.default_rng(0)
    positions = np.concatenate([rng.integers(0, len(clean), 40),
                                len(clean) - 1 - rng.integers(0, 200, 20)])
    refused = 0
    for pos in positions:
        data = bytearray(clean)
        data[pos] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(data))
        try:
            back = io.load(path)
        except BadFileError:
            refused += 1
            continue
        assert_results_equal(result, back)
    assert refused > len(positions) // 2


def _rewrite(path: Path, change):
    """Copy an npz, letting ``change(name, bytes) -> bytes`` edit members (valid CRCs)."""
    with zipfile.ZipFile(path) as zf:
        members = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members:
            zf.writestr(name, change(name, raw))


def _edit_metadata(edit):
    def change(name, raw):
        if name != "metadata.npy":
            return raw
        meta = json.loads(str(np.load(_io.BytesIO(raw))))
        edit(meta)
        buf = _io.BytesIO()
        np.save(buf, np.array(json.dumps(meta)))
        return buf.getvalue()

    return change


def test_checksum_mismatch_with_valid_zip(result, tmp_path):
    path = io.save(result, tmp_path / "r.npz")

    def change(name, raw):
        if name != "result.spectra.npy":
            return raw
        arr = np.load(_io.BytesIO(raw))
        arr[0, 0] += 1.0
        buf = _io.BytesIO()
        np.save(buf, arr)
        return buf.getvalue()

    _rewrite(path, change)
    with pytest.raises(BadFileError, match="checksum mismatch in array 'result.spectra'"):
        io.load(path)


def test_newer_schema_is_refused(result, tmp_path):
    path = io.save(result, tmp_path / "r.npz")
    _rewrite(path, _edit_metadata(lambda m: m.update(schema_version=io.SCHEMA_VERSION + 1)))
    with pytest.raises(BadFileError, match="upgrade scarlet_jax"):
        io.load(path)


def test_edited_metadata_is_refused(result, tmp_path):
    path = io.save(result, tmp_path / "r.npz")
    _rewrite(path, _edit_metadata(lambda m: m["arrays"].pop("result.loss")))
    with pytest.raises(BadFileError, match="unexpected member"):
        io.load(path)
    path = io.save(result, tmp_path / "r.npz")
    _rewrite(path, _edit_metadata(lambda m: m.update(format="something else")))
    with pytest.raises(BadFileError, match="not a scarlet_jax result file"):
        io.load(path)


def test_atomic_write(result, tmp_path, monkeypatch):
    target = tmp_path / "r.npz"

    def boom(fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        io.save(result, target)
    assert not target.exists()
    assert os.listdir(tmp_path) == []  # the temporary file is gone too
    monkeypatch.undo()

    io.save(result, target)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    before = target.read_bytes()
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        io.save(dataclasses.replace(result, n_iter=999), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["r.npz"]
    monkeypatch.undo()
    assert io.load(target).n_iter == result.n_iter


def test_save_refuses_non_results(tmp_path):
    with pytest.raises(BadInputError, match="DeblendResult"):
        io.save({"a": 1}, tmp_path / "x.npz")


# ---------------------------------------------------------------------------- scarlet lite


def _skeleton(obj):
    """The layout of a JSON value: dict keys in order, list element types, scalar types."""
    if isinstance(obj, dict):
        return {k: _skeleton(v) for k, v in obj.items()}
    if isinstance(obj, list):
        kinds = {type(v).__name__ for v in obj}
        if len(obj) and isinstance(obj[0], (dict, list)):
            return ["list", _skeleton(obj[0])]
        return ["list", sorted(kinds)]
    return type(obj).__name__


def test_reading_the_lite_reference_reproduces_its_model(hsc, reference_fit, require_file):
    require_file(LITE_JSON)
    results = io.import_scarlet_lite(LITE_JSON, hsc[0])
    assert len(results) == 1
    res = results[0]
    assert res.n_sources == 7 and res.n_components == reference_fit["final_n_components"]
    ref = reference_fit["final_model_convolved"]
    np.testing.assert_allclose(res.model, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    fluxes = reference_fit["final_source_fluxes"]
    np.testing.assert_allclose(res.source_fluxes, fluxes, rtol=1e-5,
                               atol=1e-6 * np.abs(fluxes).max())
    # every component keeps its own box (support), origin, shape and peak
    for k in range(res.n_components):
        origin = reference_fit[f"final_comp{k}_origin"]
        shape = reference_fit[f"final_comp{k}_shape"]
        np.testing.assert_array_equal(res.component_boxes()[k],
                                      [*origin, *(np.asarray(origin) + shape)])
        np.testing.assert_array_equal(res.peaks[k], reference_fit[f"final_comp{k}_peak"])
        assert res.component_source[k] == reference_fit[f"final_comp{k}_source"]
    h, w = res.morphs.shape[1:]
    assert h == w and h % 2 == 1
    np.testing.assert_array_equal(res.origins + h // 2, res.peaks)  # slots centred on peaks
    np.testing.assert_allclose(res.chi2_per_pixel(), reference_fit["final_chi2_per_pixel"],
                               rtol=1e-4)


def test_export_has_the_reference_layout(result, lite_json, tmp_path):
    path = io.export_scarlet_lite(result, tmp_path / "m.json")
    with open(path) as fh:
        ours = json.load(fh)
    assert _skeleton(ours) == _skeleton(lite_json)
    meta = ours["metadata"]
    assert meta["model_psf_shape"] == [1, *result.observation.model_psf.shape]
    assert len(meta["model_psf"]) == int(np.prod(meta["model_psf_shape"]))
    assert meta["bands"] == list(result.observation.bands)
    blend = ours["blends"]["1"]
    assert blend["shape"] == list(result.observation.shape[1:])
    assert list(blend["sources"]) == [str(s) for s in range(result.n_sources)]
    n = sum(len(s["components"]) for s in blend["sources"].values())
    assert n == result.n_components
    height, width = result.observation.shape[1:]
    for src in blend["sources"].values():
        for c in src["components"]:
            (y, x), (h, w) = c["origin"], c["shape"]
            assert 0 <= y and y + h <= height and 0 <= x and x + w <= width
            assert len(c["morph"]) == h * w
            assert y <= c["peak"][0] < y + h and x <= c["peak"][1] < x + w


def test_export_of_the_imported_reference_matches_it(hsc, lite_json, tmp_path):
    res = io.import_scarlet_lite(LITE_JSON, hsc[0])[0]
    with open(io.export_scarlet_lite(res, tmp_path / "m.json")) as fh:
        ours = json.load(fh)
    assert _skeleton(ours) == _skeleton(lite_json)
    for key, src in lite_json["blends"]["1"]["sources"].items():
        mine = ours["blends"]["1"]["sources"][key]["components"]
        assert len(mine) == len(src["components"])
        for a, b in zip(mine, src["components"], strict=True):
            for k in ("origin", "shape", "peak", "component_type", "version"):
                assert a[k] == b[k], k
            np.testing.assert_allclose(a["spectrum"], b["spectrum"], rtol=1e-6)
            np.testing.assert_allclose(a["morph"], b["morph"], rtol=1e-6, atol=1e-30)
    # our model PSF (psf.py) equals scarlet lite's to float32 precision (tails below 1e-15
    # differ relatively)
    np.testing.assert_allclose(ours["metadata"]["model_psf"], lite_json["metadata"]["model_psf"],
                               rtol=1e-5, atol=1e-9)


def test_export_import_round_trip(result, hsc, tmp_path):
    path = io.export_scarlet_lite([result, result], tmp_path / "m.json", origins=[[0, 0],
                                                                               [100, 50]])
    with open(path) as fh:
        data = json.load(fh)
    assert list(data["blends"]) == ["1", "2"]
    assert data["blends"]["2"]["origin"] == [100, 50]
    back = io.import_scarlet_lite(path, [hsc[0], hsc[0]])
    assert len(back) == 2
    for res in back:
        np.testing.assert_allclose(res.model, result.model, rtol=0,
                                   atol=1e-6 * np.abs(result.model).max())
        np.testing.assert_allclose(res.source_fluxes, result.source_fluxes, rtol=1e-6)
        np.testing.assert_array_equal(res.component_boxes(), result.component_boxes())
        np.testing.assert_array_equal(res.peaks, result.peaks)
        np.testing.assert_array_equal(res.component_source, result.component_source)
        np.testing.assert_array_equal(res.spectra, result.spectra)


def test_import_errors(hsc, tmp_path):
    obs = hsc[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BadFileError, match="not a scarlet lite JSON"):
        io.import_scarlet_lite(bad, obs)
    bad.write_text(json.dumps({"model_type": "other"}))
    with pytest.raises(BadFileError, match="model_type"):
        io.import_scarlet_lite(bad, obs)
    bad.write_text(json.dumps({"model_type": "scarlet_model", "blends": {"1": {}}}))
    with pytest.raises(BadFileError, match="layout"):
        io.import_scarlet_lite(bad, obs)


def test_import_of_the_lite_reference_checks_the_observations(hsc, lite_json):
    from scarlet_jax import make_observation

    obs = hsc[0]
    small = make_observation(obs.images[:, :40], obs.variance[:, :40], obs.psfs,
                             bands=obs.bands)
    with pytest.raises(BadInputError, match="does not match the observation"):
        io.import_scarlet_lite(LITE_JSON, small)
    with pytest.raises(BadInputError, match="observations"):
        io.import_scarlet_lite(LITE_JSON, [obs, obs])


# -------------------------------------------------------------------- several results in one file


def test_save_results_round_trip_with_a_bare_failed_result(result, tmp_path):
    failed = dataclasses.replace(result, observation=None, error="bad.npz: not an npz",
                                 spectra=np.zeros((0, 0), np.float32))
    path = io.save_results([result, failed, result], tmp_path / "many.npz")
    back = io.load_results(path)
    assert len(back) == 3
    assert_results_equal(back[0], result)
    assert_results_equal(back[2], result)
    assert back[1].observation is None and back[1].status == "failed"
    assert back[1].error == "bad.npz: not an npz" and back[1].spectra.shape == (0, 0)
    with pytest.raises(BadFileError, match="multi-result"):
        io.load_results(io.save(result, tmp_path / "one.npz"))
    start, size = _member_data_offset(path, "r2.result.morphs.npy")
    data = bytearray(path.read_bytes())
    data[start + size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(BadFileError, match="corrupted"):
        io.load_results(path)
