"""Command-line interface: ``scarlet-jax {demo,deblend,show,batch}``.

Exit codes: 0 success; 2 bad input (a one-line reason on stderr: unreadable or invalid
input, a bad result file, a missing file, bad options); 1 internal error (with a
traceback). Every subcommand turns on JAX's persistent compilation cache first.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import sys
import traceback
import warnings
from pathlib import Path

__all__ = ["main", "build_parser", "enable_compilation_cache", "load_input", "read_catalog"]

PROG = "scarlet-jax"
PICTURES = ("data_model_residual", "scene", "sources", "loss")


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (default ``~/.cache/scarlet_jax/jax``,
    or ``$SCARLET_JAX_CACHE``) so repeated CLI runs skip compilation."""
    import jax

    path = path or os.environ.get("SCARLET_JAX_CACHE") or str(
        Path.home() / ".cache" / "scarlet_jax" / "jax"
    )
    Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


# ------------------------------------------------------------------------------- input


def _bad(message: str):
    from .errors import BadInputError

    return BadInputError(message)


def _centers_from_columns(columns: dict, where: str):
    import numpy as np

    lower = {str(k).lower(): k for k in columns}
    if "y" not in lower or "x" not in lower:
        raise _bad(f"{where}: the catalog needs columns 'y' and 'x', found {sorted(columns)}")
    y = np.asarray(columns[lower["y"]], dtype=np.float64).reshape(-1)
    x = np.asarray(columns[lower["x"]], dtype=np.float64).reshape(-1)
    return np.stack([y, x], axis=1)


def _read_ecsv_plain(path: Path) -> dict:
    """A minimal ECSV reader (no astropy): '#' lines are the header, the first other line
    holds the column names; the delimiter is a space unless the header says ','."""
    import numpy as np

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


def read_catalog(path):
    """Source centers (S, 2) (y, x) from a CSV, ECSV or FITS table with columns y and x."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".fits", ".fit", ".fits.gz", ".fts")) or suffixes.endswith(
            ".ecsv"
        ):
            try:
                from astropy.table import Table
            except ImportError:
                if suffixes.endswith(".ecsv"):
                    return _centers_from_columns(_read_ecsv_plain(path), str(path))
                raise _bad(
                    f"{path}: FITS tables need astropy (pip install 'scarlet-jax[fits]')"
                ) from None
            table = Table.read(path)
            return _centers_from_columns({n: table[n] for n in table.colnames}, str(path))
        data = np.genfromtxt(path, delimiter=",", names=True, dtype=float, ndmin=1)
        if data.dtype.names is None:
            raise _bad(f"{path}: no header line with column names")
        return _centers_from_columns({n: data[n] for n in data.dtype.names}, str(path))
    except (OSError, ValueError) as err:
        from .errors import BadFileError, BadInputError

        if isinstance(err, (BadInputError, BadFileError, FileNotFoundError)):
            raise
        raise _bad(f"{path}: cannot read the catalog ({err})") from None


def _catalog_array(value, where: str):
    import numpy as np

    value = np.asarray(value)
    if value.dtype.names:
        return _centers_from_columns({n: value[n] for n in value.dtype.names}, where)
    if value.ndim == 2 and value.shape[1] == 2:
        return value.astype(np.float64)  # (S, 2) (y, x)
    raise _bad(f"{where}: catalog must have fields y, x or shape (S, 2) (y, x), got "
               f"{value.shape}")


def _load_npz(path: Path, use_mask: bool):
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise _bad(f"{path}: not a readable npz file ({err})") from None
    if not hasattr(data, "files"):
        raise _bad(f"{path}: a single .npy array, expected an npz with images, variance, psfs")
    with data:
        try:
            arrays = {k: data[k] for k in data.files}
        except Exception as err:  # corrupted members
            raise _bad(f"{path}: unreadable npz member ({type(err).__name__}: {err})") from None
    if "metadata" in arrays and "observation.images" in arrays:
        raise _bad(f"{path}: this is a result file; use 'scarlet-jax show {path}'")
    missing = [k for k in ("images", "variance", "psfs") if k not in arrays]
    if missing:
        raise _bad(f"{path}: missing array(s) {missing} (has {sorted(arrays)})")
    bands = arrays.get("bands", arrays.get("filters"))
    centers = None
    for key in ("catalog", "centers"):
        if key in arrays:
            centers = _catalog_array(arrays[key], f"{path}[{key}]")
            break
    mask = arrays.get("mask") if use_mask else None
    return arrays["images"], arrays["variance"], arrays["psfs"], mask, bands, centers


def _load_fits(path: Path, use_mask: bool):
    import numpy as np

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
            mask = np.asarray(hdul["MASK"].data) if use_mask and "MASK" in names else None
            header = hdul["IMAGES"].header
            bands = None
            if "BANDS" in header:
                bands = [b.strip() for b in str(header["BANDS"]).split(",")]
            centers = None
            if "CATALOG" in names:
                table = hdul["CATALOG"].data
                centers = _centers_from_columns({n: table[n] for n in table.names},
                                                f"{path}[CATALOG]")
    except OSError as err:
        raise _bad(f"{path}: not a readable FITS file ({err})") from None
    return images, variance, psfs, mask, bands, centers


def load_input(path, catalog=None, detect: bool = False, use_mask: bool = True):
    """Read a blend for the CLI.

    Args:
      path: an ``.npz`` with ``images`` (B, H, W), ``variance`` (B, H, W), ``psfs``
        (B, kh, kw) and optionally ``mask`` (non-zero = bad pixel), ``bands`` or
        ``filters`` (B names) and ``catalog`` (fields y, x, or (S, 2) (y, x)) or
        ``centers`` (S, 2) (y, x); or a FITS file (``fits`` extra) with extensions
        IMAGES, VARIANCE, PSFS and optional MASK and CATALOG (a table with y, x); band
        names in the IMAGES header keyword BANDS ("g,r,i").
      catalog: optional catalog file (CSV/ECSV/FITS table with columns y, x); it
        overrides a catalog inside the input.
      detect: ignore any catalog and detect the sources.
      use_mask: apply the input's mask plane.

    Returns:
      ``(observation, centers)``; centers is None when the sources are to be detected.
    """
    from .observation import make_observation

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise _bad(f"{path}: is a folder (use 'scarlet-jax batch' for folders)")
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".fits", ".fit", ".fits.gz", ".fts")):
        images, variance, psfs, mask, bands, centers = _load_fits(path, use_mask)
    else:
        images, variance, psfs, mask, bands, centers = _load_npz(path, use_mask)
    if catalog is not None:
        centers = read_catalog(catalog)
    if detect:
        centers = None
    if bands is not None:
        bands = [str(b) for b in bands]
    if mask is not None:
        import numpy as np

        fraction = float(np.mean(np.asarray(mask) != 0))
        if fraction > 0.5:
            from .errors import InputWarning

            warnings.warn(
                f"{path}: the mask flags {fraction:.0%} of the pixels as bad; if it is a bit "
                "mask (not a bad-pixel mask), pass --no-mask",
                InputWarning,
                stacklevel=2,
            )
    obs = make_observation(images, variance, psfs, bands=bands, mask=mask)
    return obs, centers


# ----------------------------------------------------------------------------- output


def write_table(columns: dict, path) -> Path:
    """Write columns as ECSV if astropy is installed, else CSV; returns the path written
    (the suffix is ``.ecsv`` or ``.csv``)."""
    import numpy as np

    path = Path(path)
    try:
        from astropy.table import Table
    except ImportError:
        Table = None
    if Table is not None:
        out = path.with_suffix(".ecsv")
        Table({k: np.asarray(v) for k, v in columns.items()}).write(
            out, format="ascii.ecsv", overwrite=True
        )
        return out
    out = path.with_suffix(".csv")
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for i in range(n):
            writer.writerow([_cell(columns[k][i]) for k in names])
    return out


def _cell(value):
    import numpy as np

    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def _summary(result, measurement) -> str:
    import numpy as np

    from .measure import flag_names

    obs = result.observation
    b, h, w = obs.shape
    lines = [
        f"{b} bands ({', '.join(obs.bands)}), {h}x{w} px, {result.n_sources} sources, "
        f"{result.n_components} components",
    ]
    if result.error is not None:
        lines.append(f"failed: {result.error}")
        return "\n".join(lines)
    lines.append(
        f"fit: {result.n_iter} iterations, status {result.status}, "
        f"chi2/pixel {result.chi2_per_pixel():.4f}"
    )
    width = max(9, *(len(x) + 2 for x in obs.bands))
    head = "src      y      x  nc  chi2/pix |"
    head += "".join(f" {'F_' + x:>{width}s}" for x in obs.bands)
    head += " |" + "".join(f" {'C_' + x:>{width}s}" for x in obs.bands) + " | flags"
    lines.append(head)
    m = measurement
    for s in range(result.n_sources):
        chi = m.chi2_per_pixel[s]
        row = (f"{s:3d} {m.centers[s, 0]:6.1f} {m.centers[s, 1]:6.1f} {m.n_components[s]:3d} "
               f"{chi if np.isfinite(chi) else float('nan'):9.3f} |")
        row += "".join(f" {v:{width}.4g}" for v in m.fluxes[s])
        row += " |" + "".join(f" {v:{width}.4g}" for v in m.conserved_fluxes[s])
        row += f" | {flag_names(m.flags[s]) or '-'}"
        lines.append(row)
    lines.append("F: model flux (model frame); C: flux-conserved (re-distributed data); "
                 "flags: see scarlet_jax.measure.FLAGS")
    return "\n".join(lines)


def _pictures(result, out: Path) -> list[Path]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no pictures (pip install 'scarlet-jax[plot]')",
              file=sys.stderr)
        return []
    from . import display

    out.mkdir(parents=True, exist_ok=True)
    return [
        display.plot_data_model_residual(result, out / "data_model_residual.png"),
        display.plot_scene(result, out / "scene.png"),
        display.plot_sources(result, out / "sources.png"),
        display.plot_loss(result, out / "loss.png"),
    ]


def _write_outputs(result, out: Path, args, save: bool = True) -> None:
    from . import io
    from .measure import measure, measurement_table

    out.mkdir(parents=True, exist_ok=True)
    measurement = measure(result)
    print(_summary(result, measurement))
    written = []
    if save:
        written.append(io.save(result, out / "result.npz"))
    if getattr(args, "lite", False):
        written.append(io.export_scarlet_lite(result, out / "scarlet_lite.json"))
    written.append(write_table(measurement_table(measurement), out / "sources"))
    if not getattr(args, "no_plots", False):
        written.extend(_pictures(result, out))
    print("wrote " + ", ".join(str(p) for p in written))


def _fit_options(args) -> dict:
    from .options import LSST_PIPELINE

    opts = dict(LSST_PIPELINE) if getattr(args, "lsst", False) else {}
    pairs = {
        "max_iter": args.max_iter,
        "e_rel": args.e_rel,
        "min_iter": args.min_iter,
        "bg_thresh": args.bg_thresh,
        "min_snr": args.min_snr,
        "max_components": args.max_components,
        "optimizer": args.optimizer,
    }
    opts.update({k: v for k, v in pairs.items() if v is not None})
    if args.no_monotonic:
        opts["monotonic"] = False
    if args.symmetric:
        opts["symmetric"] = True
    return opts


# --------------------------------------------------------------------------- commands


def cmd_demo(args) -> int:
    from . import datasets, deblend

    obs, centers = datasets.hsc_cosmos_35()
    print("hsc_cosmos_35 (embedded HSC COSMOS blend)")
    result = deblend(obs, centers, **_fit_options(args))
    _write_outputs(result, Path(args.out), args)
    return 0


def cmd_deblend(args) -> int:
    from . import deblend

    obs, centers = load_input(args.input, catalog=args.catalog, detect=args.detect,
                              use_mask=not args.no_mask)
    if centers is None:
        print("no catalog given: detecting sources", file=sys.stderr)
    print(f"{args.input}")
    result = deblend(obs, centers, **_fit_options(args))
    _write_outputs(result, Path(args.out), args)
    return 0


def cmd_show(args) -> int:
    from . import io

    result = io.load(args.result)
    out = Path(args.out) if args.out is not None else Path(args.result).parent
    print(f"{args.result}")
    _write_outputs(result, out, args, save=False)
    return 0


def _batch_inputs(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() in (".npz", ".fits", ".fit")
                       and not p.name.endswith(".result.npz"))
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(pattern)
                       if Path(p).is_file() and not p.endswith(".result.npz"))
    if not files:
        raise FileNotFoundError(f"{pattern}: no input files (.npz or .fits) found")
    return files


def _result_stem(path: Path, used: set) -> str:
    """A unique output name for an input: its name without .npz/.fits(.gz), made unique
    with a counter when two inputs share a name."""
    name = path.name
    for suffix in (".npz", ".fits.gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem, i = name, 1
    while stem in used:
        stem, i = f"{name}_{i}", i + 1
    used.add(stem)
    return stem


def cmd_batch(args) -> int:
    import numpy as np

    from . import io
    from .batch import deblend_batch
    from .errors import BadFileError, BadInputError
    from .measure import measure, measurement_table

    files = _batch_inputs(args.inputs)
    opts = _fit_options(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items, loaded, errors = [], [], {}
    for f in files:
        try:
            obs, centers = load_input(f, detect=args.detect, use_mask=not args.no_mask)
        except (BadInputError, BadFileError, FileNotFoundError) as err:
            errors[f] = str(err)
            print(f"{PROG}: skipped {f}: {err}", file=sys.stderr)
            continue
        items.append((obs, centers))
        loaded.append(f)
    results = deblend_batch(items, progress=args.progress, **opts) if items else []
    by_file = dict(zip(loaded, results, strict=True))
    used: set[str] = set()
    rows = {k: [] for k in ("input", "status", "n_sources", "n_components", "n_iter",
                            "chi2_per_pixel", "result", "error")}
    source_rows: dict[str, list] = {}
    n_ok = 0
    for f in files:
        res = by_file.get(f)
        rows["input"].append(str(f))
        if res is None or res.error is not None:
            err = errors.get(f) if res is None else res.error
            for k, v in (("status", "failed"), ("n_sources", 0), ("n_components", 0),
                         ("n_iter", 0), ("chi2_per_pixel", np.nan), ("result", ""),
                         ("error", err)):
                rows[k].append(v)
            continue
        n_ok += 1
        target = io.save(res, out / f"{_result_stem(f, used)}.result.npz")
        m = measure(res)
        table = measurement_table(m)
        table = {"input": [str(f)] * res.n_sources, **table}
        if source_rows and set(source_rows) != set(table):
            table = {k: v for k, v in table.items() if k in source_rows}
        for k, v in table.items():
            source_rows.setdefault(k, []).extend(list(v))
        for k, v in (("status", res.status), ("n_sources", res.n_sources),
                     ("n_components", res.n_components), ("n_iter", res.n_iter),
                     ("chi2_per_pixel", res.chi2_per_pixel()), ("result", str(target)),
                     ("error", "")):
            rows[k].append(v)
    written = [write_table(rows, out / "batch")]
    if source_rows:
        written.append(write_table(source_rows, out / "sources"))
    for i, f in enumerate(files):
        print(f"{f.name}: {rows['status'][i]}, {rows['n_sources'][i]} sources, "
              f"{rows['n_iter'][i]} iterations, chi2/pixel {rows['chi2_per_pixel'][i]:.4f}"
              + (f" ({rows['error'][i]})" if rows["error"][i] else ""))
    print(f"{n_ok} of {len(files)} blends deblended; wrote "
          + ", ".join(str(p) for p in written))
    if n_ok == 0:
        raise _bad(f"none of the {len(files)} inputs could be deblended")
    return 0


# ----------------------------------------------------------------------------- parser


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    from .fit import OPTIMIZERS

    g = p.add_argument_group("fit options (default: scarlet_jax.DEFAULTS)")
    g.add_argument("--max-iter", type=int, help="most iterations (default 300)")
    g.add_argument("--min-iter", type=int, help="fewest iterations before stopping (5)")
    g.add_argument("--e-rel", type=float, help="relative loss change to stop (1e-3)")
    g.add_argument("--bg-thresh", type=float, help="background threshold in noise rms (0.25)")
    g.add_argument("--min-snr", type=float, help="SNR per extra component at init (50)")
    g.add_argument("--max-components", type=int, help="components per source (2)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="adaprox (default) or fista")
    g.add_argument("--no-monotonic", action="store_true", help="turn monotonicity off")
    g.add_argument("--symmetric", action="store_true", help="turn symmetry on")
    g.add_argument("--lsst", action="store_true",
                   help="the LSST pipeline's thresholds (scarlet_jax.LSST_PIPELINE)")


def _add_output_options(p: argparse.ArgumentParser, default_out: str | None) -> None:
    p.add_argument("--out", default=default_out, metavar="DIR",
                   help=f"output folder (default {default_out or 'next to the result'})")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    p.add_argument("--lite", action="store_true",
                   help="also write scarlet_lite.json (scarlet lite's model layout)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Deblend multi-band astronomical images (a scarlet lite re-write in JAX).",
        epilog="exit codes: 0 ok, 1 internal error, 2 bad input",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="deblend the embedded HSC blend",
                          description="Deblend the embedded 5-band HSC COSMOS blend; write "
                          "result.npz, a per-source table (sources.ecsv, or .csv without "
                          "astropy) and PNG pictures, and print a summary.")
    _add_output_options(demo, "scarlet_jax_demo")
    _add_fit_options(demo)
    demo.set_defaults(func=cmd_demo)

    deb = sub.add_parser("deblend", help="deblend one blend from an npz or FITS file",
                         description="Deblend INPUT: an .npz with images, variance, psfs "
                         "(+ optional mask, bands/filters, catalog or centers), or a FITS file "
                         "with IMAGES, VARIANCE, PSFS extensions (+ MASK, CATALOG; needs "
                         "astropy). Writes result.npz, the source table and pictures.")
    deb.add_argument("input", help="input .npz or .fits file")
    src = deb.add_mutually_exclusive_group()
    src.add_argument("--catalog", metavar="FILE",
                     help="source catalog: CSV/ECSV/FITS table with columns y, x (pixels)")
    src.add_argument("--detect", action="store_true",
                     help="detect the sources (ignore any catalog in the input)")
    deb.add_argument("--no-mask", action="store_true", help="ignore the input's mask plane")
    _add_output_options(deb, "scarlet_jax_out")
    _add_fit_options(deb)
    deb.set_defaults(func=cmd_deblend)

    show = sub.add_parser("show", help="pictures and table of a saved result",
                          description="Read a result file written by 'deblend', 'demo' or "
                          "scarlet_jax.io.save, print its summary and write the pictures and "
                          "the source table.")
    show.add_argument("result", help="a result .npz file")
    _add_output_options(show, None)
    show.set_defaults(func=cmd_show)

    batch = sub.add_parser("batch", help="deblend many npz/FITS inputs in one batched fit",
                           description="Deblend every input in a folder (or matching a glob "
                           "pattern; quote it) with deblend_batch. Writes <name>.result.npz "
                           "per input, batch.ecsv (one row per input) and sources.ecsv (one "
                           "row per source).")
    batch.add_argument("inputs", metavar="DIR|GLOB", help="folder or glob pattern of inputs")
    batch.add_argument("--out", default="scarlet_jax_batch", metavar="DIR",
                       help="output folder (default scarlet_jax_batch)")
    batch.add_argument("--progress", action="store_true",
                       help="show a progress bar (needs tqdm)")
    batch.add_argument("--detect", action="store_true", help="detect the sources in every input")
    batch.add_argument("--no-mask", action="store_true", help="ignore the inputs' mask planes")
    _add_fit_options(batch)
    batch.set_defaults(func=cmd_batch)
    return parser


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 internal error, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    from .errors import BadFileError, BadInputError

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            enable_compilation_cache()
            return args.func(args)
        except (BadInputError, BadFileError, FileNotFoundError, IsADirectoryError,
                NotADirectoryError, PermissionError) as err:
            print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # a bug: say so, with the traceback
            traceback.print_exc()
            print(f"{PROG}: internal error: {type(err).__name__}: {_one_line(err)}",
                  file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
