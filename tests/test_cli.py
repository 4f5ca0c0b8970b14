"""The command line, run in-process through ``main(argv)``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from _cli import console_script as _console_script
from _cli import no_traceback as _no_traceback
from _cli import run_cli
from _ecsv import read_ecsv  # noqa: E402

from scarlet_jax import io
from scarlet_jax.cli import main

FAST = ["--max-iter", "15"]
PICTURES = ("data_model_residual.png", "scene.png", "sources.png", "loss.png")


def _table_rows(out_dir, stem):
    ecsv, plain = out_dir / f"{stem}.ecsv", out_dir / f"{stem}.csv"
    if ecsv.exists():
        return read_ecsv(ecsv)[0]
    with open(plain) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module", autouse=True)
def _isolated_compilation_cache(tmp_path_factory):
    """The CLI turns on the compilation cache: the test run's shared folder (conftest.py)
    when there is one, so the CLI's subprocesses load what other tests compiled, else a
    temporary folder; the previous settings come back for the rest of the test session."""
    import os

    import jax

    from scarlet_jax.cache import cache_dir

    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    saved = {k: getattr(jax.config, k) for k in keys}
    env = os.environ.get("SCARLET_JAX_CACHE")
    if cache_dir() is None:
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
    assert {"flux_g", "flux_conserved_y", "centroid_x", "chi2", "symmetric"} <= set(rows[0])
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


def test_batch_folder(small_inputs, tmp_path):
    """A folder of inputs (the small blends: their programs are compiled once for this
    module); a glob pattern picks the same inputs. (A broken input in a batch: exit 3, in
    test_cli_batch_survives_broken_files_and_exits_3.)"""
    import shutil

    from scarlet_jax.cli import _batch_inputs

    src = tmp_path / "inputs"
    shutil.copytree(small_inputs, src)
    out = tmp_path / "out"
    assert main(["batch", str(src), "--out", str(out), "--progress", *FAST]) == 0
    results = sorted(out.glob("*.result.npz"))
    assert [p.name for p in results] == [f"good{i}.result.npz" for i in range(2)]
    rows = _table_rows(out, "batch")
    assert len(rows) == 2
    assert all(str(r["status"]) in ("converged", "max_iter") for r in rows)
    n_sources = sum(io.load(p).n_sources for p in results)
    assert len(_table_rows(out, "sources")) == n_sources
    (src / "notes.txt").write_text("not an input")
    assert _batch_inputs(str(src / "*.npz")) == _batch_inputs(str(src))
    assert [p.name for p in _batch_inputs(str(src / "*.npz"))] == ["good0.npz", "good1.npz"]


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
    _assert_one_line_error(capsys, "not an npz file")  # not numpy's "pickled data"

    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert main(["deblend", str(empty), "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "empty file")

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
    from scarlet_jax.inputs import read_catalog
    from scarlet_jax.tables import Column, Table, write_table

    for name in ("astropy", "astropy.table", "astropy.io"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    table = Table([Column("source", np.arange(2), "", "index"),
                   Column("flux_g", np.array([1.5, 2.0]), "nJy", "flux"),
                   Column("input", np.array(["a", "b"], dtype=object), "", "file")], {})
    path = write_table(table, tmp_path / "t", "csv")
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
    header["BUNIT"] = "nJy"
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
    _, columns, meta = read_ecsv(out / "sources.ecsv")
    assert {c["name"]: c.get("unit") for c in columns}["flux_conserved_z"] == "nJy"
    assert meta["flux_unit"] == "nJy" and meta["input"] == str(path)
    # catalogs as ECSV and FITS tables (reversed, so we can tell they were used)
    cat[::-1].write(tmp_path / "cat.ecsv", format="ascii.ecsv")
    cat[::-1].write(tmp_path / "cat.fits")
    for name in ("cat.ecsv", "cat.fits"):
        assert main(["deblend", str(path), "--catalog", str(tmp_path / name), "--out",
                     str(out), "--no-plots", *FAST]) == 0
        centers = io.load(out / "result.npz").centers
        np.testing.assert_allclose(centers[0], [cat["y"][-1], cat["x"][-1]])


# ------------------------------------------------------- the real console script (subprocess)


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    """A folder with two small synthetic blends (3 bands, 32x32, 2 sources each)."""
    from scarlet_jax.datasets import synthetic_blends

    folder = tmp_path_factory.mktemp("small")
    for i, blend in enumerate(synthetic_blends(2, seed=11, shape=(32, 32), n_sources=(2, 2),
                                               n_bands=3, psf_size=11)):
        obs = blend.observation
        np.savez(folder / f"good{i}.npz", images=obs.images, variance=obs.variance,
                 psfs=obs.psfs, bands=np.array(obs.bands), centers=blend.centers)
    return folder


CHEAP = ["--max-iter", "5", "--no-plots"]


def test_cli_bit_mask_is_refused_with_the_flags_to_pass(tmp_path):
    """Defect 1: an integer bit mask (the HSC file's) was applied as 'non-zero = bad'."""
    from importlib import resources

    hsc = resources.files("scarlet_jax") / "data" / "hsc_cosmos_35.npz"
    proc = run_cli("deblend", hsc, "--out", tmp_path / "o", *CHEAP, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("scarlet-jax: error:") and "mask" in line
    assert "--bad-bits" in line and "--no-mask" in line and "--mask-planes" in line
    assert not (tmp_path / "o" / "result.npz").exists()


def test_cli_batch_survives_broken_files_and_exits_3(small_inputs, tmp_path):
    """Defects 2 and 4: one truncated npz aborted the whole batch (exit 1), and a batch
    with failed inputs exited 0; warnings named a batch index or the file twice."""
    import shutil

    src = tmp_path / "in"
    shutil.copytree(small_inputs, src)
    good = (src / "good0.npz").read_bytes()
    (src / "trunc.npz").write_bytes(good[: len(good) // 2])
    with np.load(src / "good1.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["images"] = arrays["images"].copy()
    arrays["images"][1, 3, 4] = np.nan
    np.savez(src / "nan.npz", **arrays)
    out = tmp_path / "out"
    proc = run_cli("batch", src, "--out", out, "--group-size", "2", "--no-progress", *CHEAP[:2],
                   cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    _no_traceback(proc)
    rows, columns, meta = read_ecsv(out / "batch.ecsv")
    status = {Path(r["input"]).name: r for r in rows}
    assert set(status) == {"good0.npz", "good1.npz", "nan.npz", "trunc.npz"}
    assert status["trunc.npz"]["status"] == "failed"
    assert "truncated" in status["trunc.npz"]["error"] or "npz" in status["trunc.npz"]["error"]
    assert all(status[n]["status"] != "failed" for n in ("good0.npz", "good1.npz", "nan.npz"))
    assert sorted(p.name for p in out.glob("*.result.npz")) == [
        "good0.result.npz", "good1.result.npz", "nan.result.npz"]
    assert meta["n_failed"] == 1 and all(c.get("description") for c in columns)
    # the NaN pixel's warning names its file once; no "blend <i>" index anywhere
    warning = [x for x in proc.stderr.splitlines() if "NaN/inf" in x]
    assert len(warning) == 1 and warning[0].count("nan.npz") == 1, proc.stderr
    assert "blend 0" not in proc.stderr and "blend 1" not in proc.stderr
    # progress per group (stderr is not a terminal), a timing line, the exit-code note
    assert "2 of 4 inputs done" in proc.stderr, proc.stderr
    assert "time:" in proc.stdout and "1 failed" in proc.stdout
    # the same truncated file alone: exit 2 with a one-line reason, no traceback
    single = run_cli("deblend", src / "trunc.npz", "--out", tmp_path / "o1", *CHEAP,
                     cwd=tmp_path)
    assert single.returncode == 2
    _no_traceback(single)
    assert single.stderr.strip().splitlines()[-1].startswith("scarlet-jax: error:")
    assert "trunc.npz" in single.stderr


def test_cli_output_problems_exit_2_before_fitting(small_inputs, tmp_path):
    """Defect 3: an existing --out file raised FileExistsError after the whole fit."""
    import time

    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        start = time.perf_counter()
        proc = run_cli("deblend", small_inputs / "good0.npz", "--out", out, "--max-iter",
                       "300", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        _no_traceback(proc)
        assert "--out" in proc.stderr and str(blocker) in proc.stderr
        assert "time:" not in proc.stdout  # nothing was fitted
        assert time.perf_counter() - start < 60
    assert blocker.read_text() == "not a folder"


def test_cli_broken_pipe_keeps_working(tmp_path, demo_dir):
    """Defect 3: piping into `head` gave a BrokenPipeError traceback."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu")
    cmd = (f"'{_console_script()}' show '{demo_dir / 'result.npz'}' --out out --no-plots "
           "| head -n 1")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    assert "BrokenPipe" not in proc.stderr
    assert proc.stdout.strip().endswith("result.npz")
    assert (tmp_path / "out" / "sources.ecsv").exists()


def test_cli_version_quiet_options_and_tables(small_inputs, tmp_path):
    """Defects 5 and 7: --version, --quiet, flags for the options, units and meaning in
    the tables, float32 values without float64 noise, the symmetric column."""
    from scarlet_jax import __version__

    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"scarlet-jax {__version__}"
    cat = tmp_path / "cat.csv"
    with np.load(small_inputs / "good0.npz") as f:
        (y0, x0), (y1, x1) = f["centers"]
    cat.write_text(f"y,x,symmetric\n{y0},{x0},true\n{y1},{x1},false\n")
    out = tmp_path / "out"
    proc = run_cli("deblend", small_inputs / "good0.npz", "--catalog", cat, "--out", out,
                   "--quiet", "--max-iter", "5", "--init", "wavelet", "--max-sources", "5",
                   "--option", "morph_step=0.02", "--option", "fit_spectra=False",
                   "--table-format", "csv", "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    res = io.load(out / "result.npz")
    assert res.options["init"] == "wavelet" and res.options["morph_step"] == 0.02
    assert res.options["fit_spectra"] is False
    assert res.options["max_sources"] == 5 and res.options["symmetric"] == (True, False)
    with open(out / "sources.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["symmetric"] for r in rows] == ["True", "False"]
    for r in rows:  # float32 values print with float32 digits (at most 9 significant)
        for k in ("flux_r", "chi2_per_pixel", "centroid_x"):
            digits = r[k].lstrip("-").replace(".", "").split("e")[0].lstrip("0")
            assert len(digits) <= 9, (k, r[k])
    bad = run_cli("deblend", small_inputs / "good0.npz", "--out", out, "--option", "nope=1",
                  cwd=tmp_path)
    assert bad.returncode == 2 and "nope" in bad.stderr
    _no_traceback(bad)


def test_every_option_has_a_flag_or_the_escape_hatch():
    from scarlet_jax.cli import _fit_options, build_parser
    from scarlet_jax.options import DEFAULTS

    parser = build_parser()
    args = parser.parse_args(["deblend", "x.npz", "--sparsity", "l1", "--sparsity-thresh",
                              "2", "--max-components", "1", "--no-max-sources",
                              "--symmetric", "--no-monotonic", "--option", "resize=5",
                              "--option", "grow_margin=7", "--lsst"])
    opts = _fit_options(args)
    assert opts["sparsity"] == "l1" and opts["sparsity_thresh"] == 2.0
    assert opts["max_components"] == 1 and opts["max_sources"] is None
    assert opts["symmetric"] is True and opts["monotonic"] is False
    assert opts["resize"] == 5 and opts["grow_margin"] == 7 and opts["bg_thresh"] == 1.0
    for name in DEFAULTS:  # every option can be set: --option NAME=VALUE
        value = repr(DEFAULTS[name])
        assert name in _fit_options(parser.parse_args(["demo", "--option",
                                                       f"{name}={value}"]))
    batch = parser.parse_args(["batch", "d", "--max-lanes", "8", "--group-size", "4"])
    assert batch.max_lanes == 8 and batch.group_size == 4
    assert parser.parse_args(["batch", "d"]).max_lanes is None  # the device's default
    # the old --chunk-size is still accepted (deprecated, ignored, a note on stderr)
    assert parser.parse_args(["batch", "d", "--chunk-size", "8"]).chunk_size == 8


def test_batch_lane_flags_are_checked_and_chunk_size_is_noted(tmp_path, capsys):
    """``--max-lanes 0`` is a one-line error naming the flag; the old ``--chunk-size`` is
    accepted with a note on stderr (checked before any input is read: none exists here)."""
    missing = str(tmp_path / "none")
    assert main(["batch", missing, "--max-lanes", "0", "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "--max-lanes")
    assert main(["batch", missing, "--chunk-size", "8", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--chunk-size is deprecated and ignored" in err and "--max-lanes" in err


def test_batch_isolates_an_input_the_engine_rejects(small_inputs, tmp_path, monkeypatch):
    """An engine error on one input (an image beyond its size limits) used to abort the
    batch; now that input fails alone and the others are written."""
    import shutil

    import scarlet_jax.cli as cli

    src = tmp_path / "in"
    shutil.copytree(small_inputs, src)
    with np.load(src / "good1.npz") as f:
        arrays = {k: f[k] for k in f.files}
    for k in ("images", "variance"):
        arrays[k] = np.pad(arrays[k], ((0, 0), (0, 4), (0, 4)), mode="edge")
    np.savez(src / "huge.npz", **arrays)
    real = cli.fit_group

    def picky(items, opts, **kwargs):
        if any(obs.shape[1] == 36 for obs, _ in items):
            raise ValueError("box size 301 is larger than the largest bucket 241")
        return real(items, opts, **kwargs)

    monkeypatch.setattr(cli, "fit_group", picky)
    out = tmp_path / "out"
    assert main(["batch", str(src), "--out", str(out), "--no-progress", *CHEAP[:2]]) == 3
    rows = {Path(r["input"]).name: r for r in _table_rows(out, "batch")}
    assert rows["huge.npz"]["status"] == "failed" and "box size" in rows["huge.npz"]["error"]
    assert rows["good0.npz"]["status"] != "failed" and rows["good1.npz"]["status"] != "failed"
    assert sorted(p.name for p in out.glob("*.result.npz")) == ["good0.result.npz",
                                                                "good1.result.npz"]


def test_batch_on_dask_says_which_flags_it_ignores(tmp_path, monkeypatch, capsys):
    """--max-lanes / --chunk-size do not reach Dask workers: the CLI says so instead of
    ignoring them silently (the run itself is the distributed module's, stubbed here)."""
    import scarlet_jax.distributed as distributed

    calls = []
    monkeypatch.setattr(distributed, "run_batch_command",
                        lambda *args, **kwargs: calls.append(kwargs) or 0)
    (tmp_path / "in").mkdir()
    np.savez(tmp_path / "in" / "a.npz", images=np.zeros((1, 8, 8)))  # listed, never read
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers",
                 "1", "--max-lanes", "4"]) == 0
    assert calls and calls[0]["workers"] == 1
    err = capsys.readouterr().err
    assert "--max-lanes is ignored with --workers" in err and "--chunk-size" not in err
