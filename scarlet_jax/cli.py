"""Command-line interface: ``scarlet-jax {demo,deblend,show,batch}``.

Exit codes (also in ``--help`` and the README):

* 0: success;
* 2: bad input or options (one line on stderr naming the problem: an unreadable, invalid
  or missing input, a mask that needs ``--bad-bits``, an output folder that cannot be
  written, bad option values);
* 3: ``batch`` only: some inputs failed (each is a ``failed`` row in ``batch.ecsv`` with
  its reason; every other input's results are written);
* 1: internal error (a bug: a traceback and a one-line summary);
* 130: interrupted.

Every subcommand turns on JAX's persistent compilation cache first. Output folders are
checked (created, writable) before any input is read or fitted.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import json
import os
import re
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import NamedTuple

from ._version import __version__
from .cache import enable_compilation_cache  # the library's one home for the cache set-up

# The rest of the library (and so jax, numpy, matplotlib) is imported inside the subcommands
# that need it: ``--help``, ``--version`` and argument errors answer without importing jax,
# which takes seconds. These are the only function-local imports of the package's modules.

__all__ = ["main", "build_parser", "enable_compilation_cache", "EXIT_OK", "EXIT_INTERNAL",
           "EXIT_BAD_INPUT", "EXIT_PARTIAL"]

PROG = "scarlet-jax"
EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_CODES = ("exit codes: 0 ok; 2 bad input or options; 3 some inputs of a batch failed "
              "(see batch.ecsv); 1 internal error")




def _bad(message: str):
    from .errors import BadInputError

    return BadInputError(message)


# ---------------------------------------------------------------------------- console


class Console:
    """Where the CLI talks: results on stdout, notes and warnings on stderr.

    ``level`` 0 (``--quiet``): only warnings and errors; 1: summaries; 2 (``--verbose``):
    also what is read, which mask is applied, and timings per step. A closed stdout
    (``| head``) stops the printing, never the work: the files are still written.
    """

    def __init__(self, level: int = 1):
        self.level = level
        self.stdout_open = True

    def out(self, text: str, level: int = 1) -> None:
        if self.level < level or not self.stdout_open:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.stdout_open = False
            with contextlib.suppress(OSError, ValueError):  # no error at interpreter exit
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())

    def err(self, text: str, level: int = 1) -> None:
        if self.level >= level:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _one_line(err) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


# ----------------------------------------------------------------------------- output


def prepare_out(out, what: str = "--out") -> Path:
    """Create the output folder and check that it can be written, before any work.

    Raises:
      BadInputError: ``out`` is an existing file, or the folder cannot be created or
        written (the message names it and says why).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise _bad(f"{what} {out}: exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".{PROG}-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise _bad(f"{what} {out}: cannot write there ({reason})") from None
    return out


def _timing(times: dict) -> str:
    parts = [f"{k} {v:.1f} s" for k, v in times.items() if k != "total"]
    return "time: " + ", ".join(parts) + f" (total {times['total']:.1f} s)"


def _summary(result, measurement, unit: str | None) -> str:
    import numpy as np

    from .measure import flag_names
    from .tables import IMAGE_UNITS, _zero_floor

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
    fluxes = _zero_floor(m.fluxes, obs.noise_rms)
    conserved = _zero_floor(m.conserved_fluxes, obs.noise_rms)
    for s in range(result.n_sources):
        chi = m.chi2_per_pixel[s]
        row = (f"{s:3d} {m.centers[s, 0]:6.1f} {m.centers[s, 1]:6.1f} {m.n_components[s]:3d} "
               f"{chi if np.isfinite(chi) else float('nan'):9.3f} |")
        row += "".join(f" {v:{width}.4g}" for v in fluxes[s])
        row += " |" + "".join(f" {v:{width}.4g}" for v in conserved[s])
        row += f" | {flag_names(m.flags[s]) or '-'}"
        lines.append(row)
    lines.append(f"F: model flux (model frame); C: flux-conserved (re-distributed data); "
                 f"fluxes in {unit or IMAGE_UNITS}; (y, x) 0-based pixels; "
                 "flags: see scarlet_jax.measure.FLAGS")
    return "\n".join(lines)


def _pictures(result, out: Path, console: Console, unit: str | None) -> list[Path]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        console.err("matplotlib is not installed: no pictures (pip install "
                    "'scarlet-jax[plot]')", level=0)
        return []
    from . import display

    return [
        display.plot_data_model_residual(result, out / "data_model_residual.png"),
        display.plot_scene(result, out / "scene.png"),
        display.plot_sources(result, out / "sources.png", unit=unit),
        display.plot_loss(result, out / "loss.png"),
    ]


def _table_meta(args, inputs, extra: dict | None = None) -> dict:
    meta = {"command": args.command, "input": inputs}
    opts = getattr(args, "resolved_options", None)
    if opts is not None:
        meta["options"] = opts
    return {**meta, **(extra or {})}


def _write_outputs(result, out: Path, args, console: Console, times: dict, *,
                   unit: str | None = None, source: str = "", save: bool = True,
                   extra_meta: dict | None = None) -> None:
    from . import io
    from .measure import measure
    from .tables import source_table, write_table

    start = time.perf_counter()
    measurement = measure(result)
    written = []
    if save:
        written.append(io.save(result, out / "result.npz"))
    if getattr(args, "lite", False):
        written.append(io.export_scarlet_lite(result, out / "scarlet_lite.json"))
    meta = _table_meta(args, source, extra_meta)
    meta["options"] = result.options
    table = source_table(measurement, result, unit=unit, meta=meta)
    written.append(write_table(table, out / "sources", args.table_format))
    if not getattr(args, "no_plots", False):
        written.extend(_pictures(result, out, console, unit))
    times["write"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    console.out(_summary(result, measurement, unit))
    console.out("wrote " + ", ".join(str(p) for p in written))
    console.out(_timing(times))


# ---------------------------------------------------------------------------- options


def _parse_value(text: str):
    """An option value from the command line: a Python literal (numbers, True/False/None,
    lists, tuples) or else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        low = text.strip().lower()
        return {"true": True, "false": False, "none": None}.get(low, text)


def _fit_options(args) -> dict:
    """The options of a run: LSST recipe, then --option NAME=VALUE, then explicit flags."""
    from .options import DEFAULTS, LSST_PIPELINE

    opts = dict(LSST_PIPELINE) if getattr(args, "lsst", False) else {}
    for item in getattr(args, "option", None) or []:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise _bad(f"--option {item!r}: expected NAME=VALUE (e.g. --option resize=5)")
        if name not in DEFAULTS:
            raise _bad(f"--option {name}: unknown option; known: {', '.join(sorted(DEFAULTS))}")
        opts[name] = _parse_value(value)
    for name in DEFAULTS:
        value = getattr(args, name, None)
        if value is not None:
            opts[name] = value
    if getattr(args, "no_monotonic", False):
        opts["monotonic"] = False
    if getattr(args, "symmetric_flag", False):
        opts["symmetric"] = True
    if getattr(args, "no_max_sources", False):
        opts["max_sources"] = None
    return opts


def _check_options(opts: dict) -> dict:
    """Validate before any reading or fitting (bad options: exit 2 at once)."""
    from .options import resolve_options

    return resolve_options(**opts).values


# --------------------------------------------------------------------------- commands


def _read(path, args, console: Console, **kwargs):
    from .inputs import read_blend

    blend = read_blend(path, detect=getattr(args, "detect", False),
                       use_mask=not args.no_mask, bad_bits=args.bad_bits,
                       mask_planes=args.mask_planes, **kwargs)
    console.err(f"{path}: mask: {blend.mask}", level=2)
    return blend


def cmd_demo(args, console: Console) -> int:
    from . import datasets, deblend

    opts = _fit_options(args)
    _check_options(opts)
    out = prepare_out(args.out)
    start = time.perf_counter()
    obs, centers = datasets.hsc_cosmos_35()
    times = {"read": time.perf_counter() - start}
    console.out("hsc_cosmos_35 (embedded HSC COSMOS blend)")
    start = time.perf_counter()
    result = deblend(obs, centers, **opts)
    times["fit"] = time.perf_counter() - start
    _write_outputs(result, out, args, console, times, source="hsc_cosmos_35 (embedded)")
    return EXIT_OK


def cmd_deblend(args, console: Console) -> int:
    from . import deblend

    opts = _fit_options(args)
    _check_options(opts)
    out = prepare_out(args.out)
    start = time.perf_counter()
    blend = _read(args.input, args, console, catalog=args.catalog)
    if blend.symmetric is not None and "symmetric" not in opts and blend.centers is not None:
        opts["symmetric"] = tuple(bool(f) for f in blend.symmetric)
    times = {"read": time.perf_counter() - start}
    if blend.centers is None:
        console.err("no catalog given: detecting sources", level=1)
    console.out(f"{args.input}")
    start = time.perf_counter()
    try:
        result = deblend(blend.observation, blend.centers, **opts)
    except ValueError as err:  # BadInputError, or an engine limit the input runs into
        raise _bad(f"{args.input}: {_one_line(err)}") from None
    times["fit"] = time.perf_counter() - start
    _write_outputs(result, out, args, console, times, unit=blend.unit, source=str(args.input),
                   extra_meta={"mask": blend.mask})
    return EXIT_OK


def cmd_show(args, console: Console) -> int:
    from . import io

    result_path = Path(args.result)
    if not result_path.exists():
        raise FileNotFoundError(f"{result_path}: no such file")
    out = prepare_out(args.out if args.out is not None else result_path.parent)
    start = time.perf_counter()
    result = io.load(result_path)
    times = {"read": time.perf_counter() - start}
    console.out(f"{args.result}")
    _write_outputs(result, out, args, console, times, save=False, source=str(result_path),
                   unit=args.unit)
    return EXIT_OK


# ------------------------------------------------------------------------------ batch


def _batch_inputs(pattern: str) -> list[Path]:
    from .inputs import is_input_file

    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_input_file(p))
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(pattern)
                       if Path(p).is_file() and is_input_file(p))
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


def fit_group(items, opts: dict, *, max_lanes: int | None, progress: bool):
    """The batch engine hook: deblend ``items`` ((observation, centers) pairs) and return
    one :class:`~scarlet_jax.result.DeblendResult` per item, in order; a failed item is a
    result with ``error`` set, never an exception. Another engine (a Dask cluster) can be
    swapped in through :func:`batch_engine`."""
    from .batch import deblend_batch

    return deblend_batch(items, max_lanes=max_lanes, progress=progress, **opts)


def batch_engine(args):
    """The function ``(items, opts, *, max_lanes, progress) -> results`` that fits each
    group of a batch (:func:`fit_group`, jitted ``vmap`` on the local devices)."""
    return fit_group


_SKIPPED = re.compile(r"^blend (\d+) skipped: ")


def _fit_named(engine, items, names, opts, args, console):
    """Run the engine on one group; warnings that name a blend by its index in the group
    are re-issued with its file name (and "skipped" ones dropped: the row says it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = engine(items, opts, max_lanes=args.max_lanes,
                             progress=args.show_progress and len(items) > 1)
        except (ValueError, ArithmeticError, MemoryError) as err:
            # one input the engine cannot take (a size beyond its limits, ...) must not
            # sink the group: fit each alone, and fail only the ones that fail alone
            console.err(f"a group of {len(items)} inputs failed together ({_one_line(err)}); "
                        "fitting them one by one", level=2)
            results = [_fit_alone(engine, item, opts, args) for item in items]
    for w in caught:
        text = str(w.message)
        if _SKIPPED.match(text):
            continue
        match = re.match(r"^blend (\d+)\b:?\s*", text)
        if match and int(match.group(1)) < len(names):
            text = f"{names[int(match.group(1))]}: {text[match.end():]}"
        warnings.warn_explicit(text, w.category, w.filename, w.lineno)
    return results


class _Failed(NamedTuple):
    """An input the engine could not fit (only ``error`` is read)."""

    error: str


def _fit_alone(engine, item, opts, args):
    try:
        return engine([item], opts, max_lanes=args.max_lanes, progress=False)[0]
    except (ValueError, ArithmeticError, MemoryError) as err:
        return _Failed(f"{type(err).__name__}: {_one_line(err)}")


def _prevalidate(blend, opts):
    """Merge duplicate centers with the file name in the warning, and catch centers that
    cannot be fitted, before the blend joins a batch."""
    from .centers import validate_centers

    if blend.centers is None:
        return blend.centers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        centers = validate_centers(blend.centers, blend.observation.shape[1:],
                                   max_sources=opts.get("max_sources"))
    for w in caught:
        warnings.warn_explicit(f"{blend.path}: {w.message}", w.category, w.filename, w.lineno)
    return centers


def cmd_batch(args, console: Console) -> int:
    import numpy as np

    from . import io
    from .errors import BadFileError, BadInputError
    from .measure import measure
    from .tables import batch_table, source_table, write_table

    t0 = time.perf_counter()
    if args.workers is not None or args.scheduler is not None:  # on Dask: distributed.py
        from .distributed import run_batch_command

        for flag, value in (("--max-lanes", args.max_lanes), ("--chunk-size", args.chunk_size)):
            if value is not None:  # a worker fits its partition with its device's default
                console.err(f"{flag} is ignored with --workers/--scheduler", level=1)
        return run_batch_command(_batch_inputs(args.inputs), prepare_out(args.out),
                                 workers=args.workers, scheduler=args.scheduler,
                                 options=_fit_options(args), detect=args.detect,
                                 use_mask=not args.no_mask, bad_bits=args.bad_bits,
                                 mask_planes=args.mask_planes, progress=args.show_progress)
    opts = _fit_options(args)
    resolved = _check_options(opts)
    if (args.max_lanes is not None and args.max_lanes < 1) or args.group_size < 1:
        raise _bad("--max-lanes and --group-size must be >= 1")
    if args.chunk_size is not None:
        console.err("--chunk-size is deprecated and ignored (lanes replaced chunks); "
                    "use --max-lanes", level=1)
    files = _batch_inputs(args.inputs)
    out = prepare_out(args.out)
    engine = batch_engine(args)
    used: set[str] = set()
    rows: list[dict] = []
    tables = []
    times = {"read": 0.0, "fit": 0.0, "write": 0.0}
    bar = _progress_bar(len(files), args.show_progress)
    if not bar.visible:
        groups = -(-len(files) // args.group_size)
        console.err(f"deblending {len(files)} inputs"
                    + (f" in {groups} groups of up to {args.group_size}" if groups > 1 else ""))
    done = 0
    for start in range(0, len(files), args.group_size):
        group = files[start : start + args.group_size]
        t = time.perf_counter()
        items, names, blends, group_rows = [], [], [], {}
        for f in group:
            try:
                blend = _read(f, args, console)
                centers = _prevalidate(blend, resolved)
                if blend.symmetric is not None:
                    warnings.warn(f"{f}: the catalog's symmetric column is ignored in a batch "
                                  "(options are shared); use --symmetric, or deblend the "
                                  "file alone", stacklevel=1)
            except (BadInputError, BadFileError, FileNotFoundError, OSError) as err:
                group_rows[f] = _failed_row(f, err)
                continue
            items.append((blend.observation, centers))
            names.append(str(f))
            blends.append(blend)
        times["read"] += time.perf_counter() - t
        t = time.perf_counter()
        results = _fit_named(engine, items, names, opts, args, console) if items else []
        times["fit"] += time.perf_counter() - t
        t = time.perf_counter()
        for blend, res in zip(blends, results, strict=True):
            f = blend.path
            if res.error is not None:
                group_rows[f] = _failed_row(f, res.error)
                continue
            target = io.save(res, out / f"{_result_stem(f, used)}.result.npz")
            table = source_table(measure(res), res, unit=blend.unit,
                                 meta={"input": str(f), "mask": blend.mask})
            tables.append((f, table))
            group_rows[f] = {"input": str(f), "status": res.status,
                             "n_sources": res.n_sources, "n_components": res.n_components,
                             "n_iter": res.n_iter, "chi2_per_pixel": res.chi2_per_pixel(),
                             "result": str(target), "error": ""}
        rows.extend(group_rows[f] for f in group)
        times["write"] += time.perf_counter() - t
        done += len(group)
        bar.update(len(group))
        if not bar.visible and len(files) > args.group_size:
            console.err(f"{done} of {len(files)} inputs done "
                        f"({time.perf_counter() - t0:.0f} s)")
    bar.close()
    t = time.perf_counter()
    n_failed = sum(r["status"] == "failed" for r in rows)
    meta = {"command": "batch", "input": args.inputs, "options": resolved,
            "n_inputs": len(files), "n_failed": n_failed}
    written = [write_table(batch_table(rows, meta), out / "batch", args.table_format)]
    if tables:
        written.append(write_table(_stack_sources(tables, meta), out / "sources",
                                   args.table_format))
    times["write"] += time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    for r in rows:
        chi = r["chi2_per_pixel"]
        console.out(f"{Path(r['input']).name}: {r['status']}, {r['n_sources']} sources, "
                    f"{r['n_iter']} iterations, chi2/pixel "
                    f"{chi if np.isfinite(chi) else float('nan'):.4f}"
                    + (f" ({r['error']})" if r["error"] else ""))
    console.out(f"{len(files) - n_failed} of {len(files)} inputs deblended"
                + (f", {n_failed} failed" if n_failed else "") + "; wrote "
                + ", ".join(str(p) for p in written))
    console.out(_timing(times))
    if n_failed:
        console.err(f"{n_failed} of {len(files)} inputs failed (status 'failed' in "
                    f"{written[0]}); exit code 3", level=0)
        return EXIT_PARTIAL
    return EXIT_OK


def _failed_row(path: Path, err) -> dict:
    text = _one_line(err)
    if text.startswith(f"{path}: "):  # the file is named in its own column
        text = text[len(f"{path}: "):]
    return {"input": str(path), "status": "failed", "n_sources": 0, "n_components": 0,
            "n_iter": 0, "chi2_per_pixel": float("nan"), "result": "", "error": text}


def _stack_sources(tables, meta):
    """One source table for a batch: an ``input`` column, then the per-input tables'
    columns (bands that differ between inputs: the columns of the first input)."""
    import numpy as np

    from .tables import Column, Table

    first = tables[0][1]
    names = [c.name for c in first.columns]
    columns = [Column("input", np.asarray([str(f) for f, t in tables for _ in range(len(t))],
                                          dtype=object), "", "input file")]
    for c in first.columns:
        fill = c.values.dtype if c.values.dtype.kind == "f" else np.float64  # keep float32
        parts = [t.column(c.name).values if c.name in t.names else
                 np.full(len(t), np.nan, fill) for _, t in tables]
        columns.append(Column(c.name, np.concatenate(parts), c.unit, c.description))
    info = {k: v for k, v in first.meta.items() if k not in ("input", "status", "n_iter",
                                                             "chi2_per_pixel", "mask")}
    if any(t.names != names for _, t in tables):
        info["note"] = "inputs with other bands than the first have NaN in its band columns"
    return Table(columns, {**info, **meta})


class _Bar:
    """A tqdm bar on stderr, or nothing."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # a core dependency, but an install may lack it
                print(f"{PROG}: tqdm is not installed: no progress bar (pip install tqdm)",
                      file=sys.stderr)
                return
            self.bar = tqdm(total=total, unit="input", desc=PROG, leave=False)

    @property
    def visible(self) -> bool:
        return self.bar is not None

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(total: int, enabled: bool) -> _Bar:
    return _Bar(total, enabled)


# ----------------------------------------------------------------------------- parser


def _mask_planes(text: str) -> dict[str, int]:
    from .inputs import LSST_MASK_PLANES

    if text.strip().lower() == "lsst":
        return dict(LSST_MASK_PLANES)
    planes = {}
    for item in text.split(","):
        name, sep, bit = item.partition("=")
        if not sep or not name.strip() or not bit.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected NAME=BIT,... (e.g. BAD=0,SAT=1,CR=3) or 'lsst'")
        planes[name.strip().upper()] = int(bit)
    return planes


def _bad_bits(text: str) -> list:
    items = []
    for item in text.split(","):
        item = item.strip()
        if item.isdigit():
            items.append(int(item))
        elif re.fullmatch(r"0x[0-9a-fA-F]+", item):
            value = int(item, 16)
            items.extend(b for b in range(64) if value >> b & 1)
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item):
            items.append(item if item.lower() == "default" else item.upper())
        else:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected bit numbers, plane names or 'default' (e.g. 0,1,3 or "
                "BAD,SAT,CR)")
    return items


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    level = g.add_mutually_exclusive_group()
    level.add_argument("-q", "--quiet", dest="level", action="store_const", const=0,
                       help="print only warnings and errors")
    level.add_argument("-v", "--verbose", dest="level", action="store_const", const=2,
                       help="also print what is read and which mask is applied")
    g.add_argument("--table-format", choices=("ecsv", "csv"), default="ecsv",
                   help="ecsv (default: units, descriptions, metadata) or csv")


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    from .fit import OPTIMIZERS
    from .options import DEFAULTS, INITS, OPTION_DOCS, SPARSITY

    def doc(name):
        return f"{OPTION_DOCS[name]} (default {DEFAULTS[name]!r})".replace("%", "%%")

    g = p.add_argument_group("fit options (see scarlet_jax.DEFAULTS)")
    g.add_argument("--max-iter", type=int, help=doc("max_iter"))
    g.add_argument("--min-iter", type=int, help=doc("min_iter"))
    g.add_argument("--e-rel", type=float, help=doc("e_rel"))
    g.add_argument("--bg-thresh", type=float, help=doc("bg_thresh"))
    g.add_argument("--min-snr", type=float, help=doc("min_snr"))
    g.add_argument("--max-components", type=int, choices=(0, 1, 2), help=doc("max_components"))
    g.add_argument("--max-sources", type=int, help=doc("max_sources"))
    g.add_argument("--no-max-sources", action="store_true", help="no limit on the sources")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=doc("optimizer"))
    g.add_argument("--init", choices=INITS, help=doc("init"))
    g.add_argument("--sparsity", choices=[s for s in SPARSITY if s], help=doc("sparsity"))
    g.add_argument("--sparsity-thresh", type=float, help=doc("sparsity_thresh"))
    g.add_argument("--no-monotonic", action="store_true", help="turn monotonicity off")
    g.add_argument("--symmetric", dest="symmetric_flag", action="store_true",
                   help="make every source symmetric (per source: a 'symmetric' column in "
                   "the catalog)")
    g.add_argument("--lsst", action="store_true",
                   help="the LSST pipeline's thresholds (scarlet_jax.LSST_PIPELINE)")
    g.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="any option of scarlet_jax.DEFAULTS (repeatable), e.g. --option "
                   "resize=5 --option fit_spectra=False")
    g.add_argument("--dry-run", action="store_true",
                   help="check the options, print them as the fit would get them (JSON) "
                   "and exit; nothing is read or fitted")


def _add_input_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mask (see 'Input files' in the README)")
    g.add_argument("--no-mask", action="store_true", help="ignore the input's mask")
    g.add_argument("--bad-bits", type=_bad_bits, metavar="BITS",
                   help="bits of an integer bit mask that mark bad pixels: bit numbers "
                   "(0,1,3), a value (0x10b), plane names (BAD,SAT,CR), or 'default' "
                   "(BAD, CR, NO_DATA, SAT, SUSPECT, EDGE, the LSST deblender's set)")
    g.add_argument("--mask-planes", type=_mask_planes, metavar="PLANES",
                   help="name the mask's bits: NAME=BIT,... or 'lsst' (BAD=0, SAT=1, "
                   "INTRP=2, CR=3, EDGE=4, DETECTED=5, DETECTED_NEGATIVE=6, SUSPECT=7, "
                   "NO_DATA=8); overrides the file's own names")


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
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, **kwargs):
        return sub.add_parser(name, epilog=EXIT_CODES, **kwargs)

    demo = add("demo", help="deblend the embedded HSC blend",
               description="Deblend the embedded 5-band HSC COSMOS blend; write result.npz, "
               "a per-source table (sources.ecsv) and PNG pictures, and print a summary.")
    _add_output_options(demo, "scarlet_jax_demo")
    _add_fit_options(demo)
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)

    deb = add("deblend", help="deblend one blend from an npz or FITS file",
              description="Deblend INPUT: an .npz with images, variance, psfs (+ optional "
              "mask, mask_planes, bands/filters, catalog or centers, unit), or a FITS file "
              "with IMAGES, VARIANCE, PSFS extensions (+ MASK, CATALOG; needs astropy). "
              "Writes result.npz, the source table and pictures. Positions are 0-based "
              "pixels (y, x).")
    deb.add_argument("input", help="input .npz or .fits file")
    src = deb.add_mutually_exclusive_group()
    src.add_argument("--catalog", metavar="FILE",
                     help="source catalog: CSV/ECSV/FITS table with columns y, x (0-based "
                     "pixels) and optionally symmetric")
    src.add_argument("--detect", action="store_true",
                     help="detect the sources (ignore any catalog in the input)")
    _add_input_options(deb)
    _add_output_options(deb, "scarlet_jax_out")
    _add_fit_options(deb)
    _add_common(deb)
    deb.set_defaults(func=cmd_deblend)

    show = add("show", help="pictures and table of a saved result",
               description="Read a result file written by 'deblend', 'demo' or "
               "scarlet_jax.io.save, print its summary and write the pictures and the "
               "source table.")
    show.add_argument("result", help="a result .npz file")
    show.add_argument("--unit", help="the flux unit to write in the table (default "
                      "'image units')")
    _add_output_options(show, None)
    _add_common(show)
    show.set_defaults(func=cmd_show)

    batch = add("batch", help="deblend many npz/FITS inputs in batched fits",
                description="Deblend every input in a folder (or matching a glob pattern; "
                "quote it). Inputs are read, fitted (one jitted vmap per shape bucket) and "
                "written in groups of --group-size. Writes <name>.result.npz per input, "
                "batch.ecsv (one row per input, failed ones with their reason) and "
                "sources.ecsv (one row per source).")
    batch.add_argument("inputs", metavar="DIR|GLOB", help="folder or glob pattern of inputs")
    batch.add_argument("--out", default="scarlet_jax_batch", metavar="DIR",
                       help="output folder (default scarlet_jax_batch)")
    progress = batch.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="no progress bar")
    batch.add_argument("--detect", action="store_true", help="detect the sources in every input")
    batch.add_argument("--max-lanes", type=int, default=None, metavar="N",
                       help="most blends fitted side by side in one bucket's program "
                       "(default 1 on a CPU, 256 on an accelerator)")
    batch.add_argument("--chunk-size", type=int, default=None, help=argparse.SUPPRESS)
    batch.add_argument("--group-size", type=int, default=256, metavar="N",
                       help="inputs read and fitted together; bounds memory, and progress "
                       "is reported per group (default 256)")
    _add_input_options(batch)
    dask = batch.add_mutually_exclusive_group()
    dask.add_argument("--workers", type=int, metavar="N",
                      help="run on a new local Dask cluster of N worker processes (dask "
                      "extra); writes partitions/, run.json, index.json (scarlet_jax.distributed)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="run on the Dask cluster at ADDRESS (e.g. tcp://host:8786); same "
                      "output layout as --workers")
    _add_fit_options(batch)
    _add_common(batch)
    batch.set_defaults(func=cmd_batch)
    return parser


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 3 some batch inputs failed,
    1 internal error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_BAD_INPUT
    from .errors import BadFileError, BadInputError

    level = 1 if args.level is None else args.level
    console = Console(level)
    progress = getattr(args, "progress", None)
    args.show_progress = (level > 0 and sys.stderr.isatty()) if progress is None else progress

    def show_warning(message, category, filename, lineno, file=None, line=None):
        console.err(f"warning: {_one_line(message)}", level=0)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            if getattr(args, "dry_run", False):  # the options as the fit would get them
                console.out(json.dumps(_check_options(_fit_options(args))))
                return EXIT_OK
            enable_compilation_cache()
            return args.func(args, console)
        except (BadInputError, BadFileError, FileNotFoundError, IsADirectoryError,
                NotADirectoryError, PermissionError) as err:
            console.err(f"error: {_one_line(err)}", level=0)
            return EXIT_BAD_INPUT
        except OSError as err:  # a full disk, a vanished folder: the environment, not a bug
            console.err(f"error: {_one_line(err)}", level=0)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            console.err("interrupted", level=0)
            return 130
        except Exception as err:  # a bug: say so, with the traceback
            traceback.print_exc()
            console.err(f"internal error: {type(err).__name__}: {_one_line(err)}", level=0)
            return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
