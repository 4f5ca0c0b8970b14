"""The command line, run in-process through ``main(argv)``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scarlet_jax import io
from scarlet_jax.cli import main

FAST = ["--max-iter", "15"]
PICTURES = ("data_model_residual.png", "scene.png", "sources.png", "loss.png")


def _table_rows(out_dir, stem):
    ecsv, plain = out_dir / f"{stem}.ecsv", out_dir / f"{stem}.csv"
    if ecsv.exists():
        from astropy.table import Table

        return Table.read(ecsv, format="ascii.ecsv")
    with open(plain) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module", autouse=True)
def _isolated_compilation_cache(tmp_path_factory):
    """The CLI turns on JAX's persistent compilation cache: point it at a temporary folder
    and restore the previous settings for the rest of the test session."""
    import os

    import jax

    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    saved = {k: getattr(jax.config, k) for k in keys}
    env = os.environ.get("SCARLET_JAX_CACHE")
    os.environ["SCARLET_JAX_CACHE"] = str(tmp_path_factory.mktemp("jax_cache"))
    yield
    if env is None:
        os.environ.pop("SCARLET_JAX_CACHE", None)
    else:
        os.environ["SCARLET_JAX_CACHE"] = env
    for k, v in saved.items():
        jax.config.update(k, v)


@pytest.fixture(scope="module")
def hsc_npz(tmp_path_factory):
    from scarlet_jax.datasets import load_hsc_cosmos_35_arrays

    arrays = load_hsc_cosmos_35_arrays()
    path = tmp_path_factory.mktemp("inputs") / "hsc.npz"
    np.savez(path, images=arrays["images"], variance=arrays["variance"], psfs=arrays["psfs"],
             filters=arrays["filters"], catalog=arrays["catalog"])
    return path


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), *FAST]) == 0
    return out


def test_demo_writes_pictures_table_and_result(demo_dir, capsys):
    for name in PICTURES:
        assert (demo_dir / name).stat().st_size > 5000, name
    rows = _table_rows(demo_dir, "sources")
    assert len(rows) == 7
    assert {"flux_g", "flux_conserved_y", "centroid_x", "chi2"} <= set(
        rows.colnames if hasattr(rows, "colnames") else rows[0])
    res = io.load(demo_dir / "result.npz")
    assert res.n_sources == 7 and res.options["max_iter"] == 15


def test_demo_prints_a_summary(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), *FAST, "--no-plots", "--lite"]) == 0
    out = capsys.readouterr().out
    assert "7 sources" in out and "chi2/pixel" in out and "F_g" in out and "C_y" in out
    assert (tmp_path / "scarlet_lite.json").exists()
    assert not (tmp_path / "scene.png").exists()


def test_deblend_npz_with_embedded_catalog(hsc_npz, tmp_path):
    out = tmp_path / "out"
    assert main(["deblend", str(hsc_npz), "--out", str(out), *FAST]) == 0
    res = io.load(out / "result.npz")
    assert res.n_sources == 7 and res.observation.bands == ("g", "r", "i", "z", "y")
    for name in PICTURES:
        assert (out / name).exists()
    assert len(_table_rows(out, "sources")) == 7


def test_deblend_with_catalog_file_and_options(hsc_npz, tmp_path):
    cat = tmp_path / "cat.csv"
    cat.write_text("x,y\n14.0,33.0\n31.0,36.0\n19.0,47.0\n")
    out = tmp_path / "out"
    argv = ["deblend", str(hsc_npz), "--catalog", str(cat), "--out", str(out), "--no-plots",
            "--max-iter", "15", "--bg-thresh", "1.0", "--no-monotonic", "--e-rel", "1e-2"]
    assert main(argv) == 0
    res = io.load(out / "result.npz")
    assert res.n_sources == 3
    np.testing.assert_allclose(res.centers[0], [33.0, 14.0])
    assert res.options["monotonic"] is False and res.options["bg_thresh"] == 1.0


def test_deblend_detect(hsc_npz, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["deblend", str(hsc_npz), "--detect", "--out", str(out), "--no-plots",
                 *FAST]) == 0
    assert "detecting" in capsys.readouterr().err
    assert io.load(out / "result.npz").n_sources >= 3


def test_show(demo_dir, tmp_path, capsys):
    out = tmp_path / "show"
    assert main(["show", str(demo_dir / "result.npz"), "--out", str(out)]) == 0
    for name in PICTURES:
        assert (out / name).exists()
    assert "7 sources" in capsys.readouterr().out


def test_batch_folder(tmp_path):
    from scarlet_jax.datasets import synthetic_blends

    src = tmp_path / "inputs"
    src.mkdir()
    for i, blend in enumerate(synthetic_blends(3, seed=3, shape=(40, 40), n_sources=(2, 3),
                                               psf_size=15)):
        obs = blend.observation
        np.savez(src / f"blend{i}.npz", images=obs.images, variance=obs.variance,
                 psfs=obs.psfs, bands=np.array(obs.bands), centers=blend.centers)
    out = tmp_path / "out"
    assert main(["batch", str(src), "--out", str(out), "--progress", *FAST]) == 0
    results = sorted(out.glob("*.result.npz"))
    assert [p.name for p in results] == [f"blend{i}.result.npz" for i in range(3)]
    rows = _table_rows(out, "batch")
    assert len(rows) == 3
    assert all(str(r["status"]) in ("converged", "max_iter") for r in rows)
    n_sources = sum(io.load(p).n_sources for p in results)
    assert len(_table_rows(out, "sources")) == n_sources
    # a glob pattern picks the same inputs; a broken one is reported, the others deblended
    (src / "broken.npz").write_bytes(b"not a zip")
    out2 = tmp_path / "out2"
    assert main(["batch", str(src / "*.npz"), "--out", str(out2), *FAST]) == 0
    rows = _table_rows(out2, "batch")
    assert len(rows) == 4 and sum(str(r["status"]) == "failed" for r in rows) == 1


def _assert_one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("scarlet-jax: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in "\n".join(err)
    for w in words:
        assert w in errors[0]


def test_bad_input_exits_2(tmp_path, capsys, demo_dir):
    assert main(["deblend", str(tmp_path / "missing.npz")]) == 2
    _assert_one_line_error(capsys, "missing.npz")

    partial = tmp_path / "partial.npz"
    np.savez(partial, images=np.zeros((2, 20, 20)))
    assert main(["deblend", str(partial), "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "variance")

    text = tmp_path / "text.npz"
    text.write_text("hello")
    assert main(["deblend", str(text), "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "npz")

    bad = tmp_path / "bad.npz"
    bad.write_bytes((demo_dir / "result.npz").read_bytes()[:3000])
    assert main(["show", str(bad), "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "truncated")

    assert main(["demo", "--out", str(tmp_path / "o"), "--max-iter", "-3"]) == 2
    _assert_one_line_error(capsys, "max_iter")

    neg = tmp_path / "neg.npz"
    psf = np.ones((1, 3, 3)) / 9
    np.savez(neg, images=np.ones((1, 20, 20)), variance=np.ones((1, 20, 20)), psfs=psf,
             centers=np.array([[50.0, 5.0]]))
    assert main(["deblend", str(neg), "--out", str(tmp_path / "o"), "--no-plots"]) == 2
    _assert_one_line_error(capsys, "outside the image")

    assert main(["batch", str(tmp_path / "nothing_here"), "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "no input files")

    assert main(["frobnicate"]) == 2


def test_internal_error_exits_1(monkeypatch, tmp_path, capsys):
    import scarlet_jax

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(scarlet_jax, "deblend", broken)
    assert main(["demo", "--out", str(tmp_path), "--no-plots"]) == 1
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["demo"], ["deblend"], ["show"], ["batch"]])
def test_help(command, capsys):
    assert main([*command, "--help"]) == 0
    assert "usage: scarlet-jax" in capsys.readouterr().out


def test_tables_and_catalogs_without_astropy(monkeypatch, tmp_path):
    from scarlet_jax.cli import read_catalog, write_table

    for name in ("astropy", "astropy.table", "astropy.io"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    path = write_table({"source": np.arange(2), "flux_g": np.array([1.5, 2.0]),
                        "input": ["a", "b"]}, tmp_path / "t")
    assert path.suffix == ".csv"
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1] == {"source": "1", "flux_g": "2.0", "input": "b"}
    ecsv = tmp_path / "cat.ecsv"
    ecsv.write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: y, datatype: float64}\n"
                    "# - {name: x, datatype: float64}\n# schema: astropy-2.0\ny x\n1.5 2.5\n"
                    "3.0 4.0\n")
    np.testing.assert_allclose(read_catalog(ecsv), [[1.5, 2.5], [3.0, 4.0]])
    bad = tmp_path / "cat.csv"
    bad.write_text("ra,dec\n1,2\n")
    with pytest.raises(ValueError, match="columns 'y' and 'x'"):
        read_catalog(bad)


def test_fits_input_and_catalogs(tmp_path, hsc_npz):
    fits = pytest.importorskip("astropy.io.fits")
    from astropy.table import Table

    with np.load(hsc_npz) as f:
        arrays = {k: f[k] for k in f.files}
    header = fits.Header()
    header["BANDS"] = ",".join(str(b) for b in arrays["filters"])
    cat = Table({"y": arrays["catalog"]["y"], "x": arrays["catalog"]["x"]})
    hdul = fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(arrays["images"], header=header, name="IMAGES"),
        fits.ImageHDU(arrays["variance"], name="VARIANCE"),
        fits.ImageHDU(arrays["psfs"], name="PSFS"),
        fits.table_to_hdu(cat),
    ])
    hdul[-1].name = "CATALOG"
    path = tmp_path / "blend.fits"
    hdul.writeto(path)
    out = tmp_path / "out"
    assert main(["deblend", str(path), "--out", str(out), "--no-plots", *FAST]) == 0
    res = io.load(out / "result.npz")
    assert res.n_sources == 7 and res.observation.bands == ("g", "r", "i", "z", "y")
    # catalogs as ECSV and FITS tables (reversed, so we can tell they were used)
    cat[::-1].write(tmp_path / "cat.ecsv", format="ascii.ecsv")
    cat[::-1].write(tmp_path / "cat.fits")
    for name in ("cat.ecsv", "cat.fits"):
        assert main(["deblend", str(path), "--catalog", str(tmp_path / name), "--out",
                     str(out), "--no-plots", *FAST]) == 0
        centers = io.load(out / "result.npz").centers
        np.testing.assert_allclose(centers[0], [cat["y"][-1], cat["x"][-1]])
