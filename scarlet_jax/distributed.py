"""Survey-scale deblending on Dask: partitions of blends as tasks, restartable, exactly once.

Needs the ``dask`` extra (``pip install 'scarlet-jax[dask]'``: ``dask[distributed]`` and
``pyarrow``); imported lazily. :func:`deblend_catalog` splits the inputs into partitions of
``batch_size`` consecutive blends, runs one task per partition (``deblend_batch`` on the
worker's local devices) and writes, per partition, atomically (temporary file +
``os.replace``)::

    out_dir/run.json                      options, library version, layout version
    out_dir/index.json                    the partitions of the last run, in input order
    out_dir/partitions/<name>/results.npz all of the partition's results (io.save_results)
    out_dir/partitions/<name>/catalog.parquet   one row per source (one per failed blend)
    out_dir/partitions/<name>/manifest.json     per blend status, n_iter, error, timing

A partition's name is its position and a hash of its blends' ids (the input path, or the
sha256 of the arrays of an in-memory blend), so the split is the same on every run. The
manifest is written last: a partition with a manifest is finished and is skipped by a
re-run; any other is done again, from scratch. A task that dies half-way, or runs twice,
leaves at most complete files that the next attempt replaces with identical ones, so every
blend ends up exactly once. One result file per partition (not per blend) keeps the file
count of a million-blend run in the thousands, which parallel file systems need.

Test-only failure hook: with ``SCARLET_JAX_DASK_FAIL_ONCE=DIR`` in the workers'
environment and a file ``DIR/armed`` holding "raise" or "exit", the first partition task
to get past writing its result file creates ``DIR/failed`` and raises (or kills its
worker process); every later task runs normally. It simulates a task or worker lost
half-way through its writes; it is never set outside tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ._version import __version__
from .batch import deblend_batch
from .errors import BadFileError, BadInputError
from .inputs import read_blend
from .io import _atomic_write, _encode, load_results, save_results
from .measure import measure
from .observation import Observation
from .options import resolve_options
from .pipeline import failed_result as _failed_result

__all__ = [
    "CatalogSummary",
    "deblend_catalog",
    "read_catalog",
    "read_manifest",
    "read_results",
    "run_batch_command",
]

#: Version of the out_dir layout.
LAYOUT_VERSION = 1
RUN_FORMAT = "scarlet_jax.catalog"
FAIL_HOOK = "SCARLET_JAX_DASK_FAIL_ONCE"

# Bits of the catalog's ``flags`` column.
FLAG_FAILED = 1  #: the blend could not be deblended (see ``error``)
FLAG_DIVERGED = 2  #: the fit diverged
FLAG_MAX_ITER = 4  #: the fit stopped at max_iter without converging
FLAG_NO_PIXELS = 8  #: the source's footprint has no pixel with weight > 0
FLAG_NOT_FINITE = 16  #: a flux of the source is not finite
FLAG_NO_MEASUREMENT = 32  #: the measurement raised (see ``error``)


def _need_dask():
    # dask, distributed and pyarrow are the optional [dask] extra: imported where used
    try:
        import dask  # noqa: F401
        import distributed
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"scarlet_jax.distributed needs dask.distributed and pyarrow ({err}); "
            "install them with: pip install 'scarlet-jax[dask]'"
        ) from None
    return distributed


def _read_input(path, detect: bool, use_mask: bool, bad_bits=None, mask_planes=None):
    """(observation, centers) of an npz/FITS input file in the CLI's formats
    (:func:`scarlet_jax.inputs.read_blend`)."""
    blend = read_blend(path, detect=detect, use_mask=use_mask, bad_bits=bad_bits,
                       mask_planes=mask_planes)
    return blend.observation, blend.centers


# ------------------------------------------------------------------------------ ids and plan


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def blend_id(item) -> str:
    """A stable id of one input: a file's absolute path, or ``sha256:<16 hex>`` of an
    in-memory blend's arrays (images, variance, psfs, weights, bands, centers)."""
    if _is_path(item):
        return os.path.abspath(os.fspath(item))
    obs, centers = (item, None) if isinstance(item, Observation) else (None, None)
    if obs is None:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise BadInputError(
                f"an input must be a file path, an Observation or an (observation, centers) "
                f"pair, got {type(item).__name__}"
            )
        obs, centers = item
    digest = hashlib.sha256()
    for name in ("images", "variance", "psfs", "weights"):
        arr = np.ascontiguousarray(np.asarray(getattr(obs, name, np.zeros(0))))
        digest.update(f"{name}{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    digest.update(repr(tuple(getattr(obs, "bands", ()))).encode())
    if centers is not None:
        try:
            arr = np.ascontiguousarray(np.asarray(centers, np.float64))
            digest.update(f"centers{arr.shape}".encode() + arr.tobytes())
        except (TypeError, ValueError):  # bad centers: the blend fails later, on its own
            digest.update(repr(centers).encode())
    return "sha256:" + digest.hexdigest()[:16]


def _unique(ids: list[str], seen: dict[str, int]) -> list[str]:
    """Ids made unique in a run: a repeat of an id gets ``#1``, ``#2``, ..."""
    out = []
    for i in ids:
        n = seen.get(i, 0)
        seen[i] = n + 1
        out.append(i if n == 0 else f"{i}#{n}")
    return out


def _partition_name(index: int, ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    return f"p{index:06d}-{digest}"


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What every task needs besides its inputs (small, picklable)."""

    out_dir: str
    options: dict
    detect: bool
    use_mask: bool
    compile_cache: str | None
    bad_bits: Any = None
    mask_planes: dict | None = None


# ------------------------------------------------------------------------------ run record


def _encode_options(options: dict) -> dict:
    return {k: _encode(v, k) for k, v in sorted(options.items())}


def _run_record(options: dict, detect: bool, use_mask: bool, bad_bits=None,
                mask_planes=None) -> dict:
    values = resolve_options(**options).values
    return {
        "format": RUN_FORMAT,
        "layout_version": LAYOUT_VERSION,
        "library_version": __version__,
        "options": _encode_options(values),
        "inputs": {"detect": bool(detect), "use_mask": bool(use_mask),
                   "bad_bits": _plain(bad_bits), "mask_planes": _plain(mask_planes)},
    }


def _check_run(out: Path, record: dict) -> None:
    """Write ``run.json``, or refuse a run whose options or version differ from it."""
    path = out / "run.json"
    if not path.exists():
        _write_json(path, record)
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BadFileError(f"{path}: unreadable run record ({err})") from None
    if old.get("format") != RUN_FORMAT:
        raise BadInputError(f"{out}: {path.name} is not a scarlet_jax catalog run record")
    for key, what in (("options", "options"), ("inputs", "input settings"),
                      ("library_version", "scarlet_jax version"),
                      ("layout_version", "layout version")):
        if old.get(key) != record[key]:
            diff = _differences(old.get(key), record[key])
            raise BadInputError(
                f"{out} holds results made with other {what} ({diff}); results from mixed "
                "settings would mix silently: use a new out_dir, or the same settings"
            )


def _plain(value):
    """A JSON-able copy of a bad-bits / mask-planes setting (None stays None)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    return [_plain(v) for v in value]


def _differences(old, new) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys)
    return f"{old!r} then, {new!r} now"


def _write_json(path: Path, data) -> None:
    with _atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=1, sort_keys=True).encode())


# ------------------------------------------------------------------------------ worker side


def _maybe_fail(stage: str) -> None:
    """The test-only failure hook (see the module docstring)."""
    folder = os.environ.get(FAIL_HOOK)
    if not folder or stage != "after_results":
        return
    try:
        mode = Path(folder, "armed").read_text().strip()
    except OSError:
        return
    try:
        fd = os.open(os.path.join(folder, "failed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    if mode == "exit":
        os._exit(17)
    raise RuntimeError(f"{FAIL_HOOK}: injected failure at {stage}")


def _finished(folder: Path) -> bool:
    return all((folder / n).exists() for n in ("manifest.json", "results.npz", "catalog.parquet"))


def _configure_jax(settings: _Settings) -> None:
    if settings.compile_cache:
        jax.config.update("jax_compilation_cache_dir", settings.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _load_items(inputs: list, settings: _Settings):
    """Inputs -> (items for deblend_batch or None, error or None, seconds) per blend."""
    loaded = []
    for item in inputs:
        t0 = time.perf_counter()
        try:
            got = (_read_input(item, settings.detect, settings.use_mask, settings.bad_bits,
                               settings.mask_planes) if _is_path(item) else item)
            loaded.append((got, None, time.perf_counter() - t0))
        except Exception as err:  # bad input: this blend fails, the others go on
            message = str(err)
            if _is_path(item) and os.fspath(item) not in message:
                message = f"{os.fspath(item)}: {message}"
            loaded.append((None, f"{type(err).__name__}: {message}", time.perf_counter() - t0))
    return loaded


def _deblend_isolated(items: list, options: dict) -> list:
    """``deblend_batch`` on the items; should the batch raise, each blend alone, so an
    unforeseen error fails only its own blend."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # a worker keeps to its one core (one single-threaded worker per core)
            return deblend_batch(items, streams=1, **options)
        except Exception:
            out = []
            for item in items:
                try:
                    out.extend(deblend_batch([item], streams=1, **options))
                except Exception as err:
                    obs = item[0] if isinstance(item, (tuple, list)) else item
                    out.append(_failed_result(obs, f"{type(err).__name__}: {err}",
                                              resolve_options(**options)))
            return out


def run_partition(name: str, inputs: list, ids: list[str], positions: list[int],
                  settings: _Settings) -> dict:
    """Deblend one partition and write its three files; returns its manifest.

    Args:
      name: the partition's folder name.
      inputs: its blends: paths, observations or (observation, centers) pairs.
      ids: one blend id per input.
      positions: each blend's position in the run's input order.
      settings: output folder, options and input settings.
    """
    folder = Path(settings.out_dir) / "partitions" / name
    if _finished(folder):  # done by an earlier attempt or run
        manifest = json.loads((folder / "manifest.json").read_text())
        return {**manifest, "skipped": True}
    t_start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    _configure_jax(settings)
    loaded = _load_items(inputs, settings)
    t_loaded = time.perf_counter()
    good = [i for i, (item, _, _) in enumerate(loaded) if item is not None]
    fitted = _deblend_isolated([loaded[i][0] for i in good], settings.options) if good else []
    t_fitted = time.perf_counter()
    opts = resolve_options(**settings.options)
    results = [None] * len(inputs)
    for i, res in zip(good, fitted, strict=True):
        results[i] = res
    for i, (_, error, _) in enumerate(loaded):
        if error is not None:
            results[i] = _failed_result(None, error, opts)
    save_results(results, folder / "results.npz")
    _maybe_fail("after_results")
    table, measure_errors = _catalog_table(results, ids, positions)
    _write_parquet(table, folder / "catalog.parquet")
    t_written = time.perf_counter()
    fit_share = (t_fitted - t_loaded) / max(len(good), 1)
    blends = []
    for i, res in enumerate(results):
        blends.append({
            "blend_id": ids[i],
            "position": positions[i],
            "status": res.status,
            "n_iter": int(res.n_iter),
            "converged": bool(res.converged),
            "diverged": bool(res.diverged),
            "error": res.error,
            "measure_error": measure_errors.get(i),
            "load_seconds": round(loaded[i][2], 6),
            "fit_seconds": round(fit_share, 6) if res.error is None else 0.0,
        })
    manifest = {
        "partition": name,
        "n_blends": len(inputs),
        "blends": blends,
        "seconds": {
            "load": round(t_loaded - t_start, 6),
            "fit": round(t_fitted - t_loaded, 6),
            "write": round(t_written - t_fitted, 6),
            "total": round(t_written - t_start, 6),
        },
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "finished_at": time.time(),
    }
    _write_json(folder / "manifest.json", manifest)  # last: marks the partition finished
    return {**manifest, "skipped": False}


def run_bag_partition(inputs: list, index: int, settings: _Settings) -> list[dict]:
    """A dask bag partition as one of our partitions (ids computed on the worker)."""
    inputs = list(inputs)
    ids = _unique([blend_id(x) for x in inputs], {})
    name = _partition_name(index, ids)
    return [run_partition(name, inputs, ids, [-1] * len(inputs), settings)]


# ------------------------------------------------------------------------------ catalog


_FIXED = (("blend_id", "string"), ("position", "int64"), ("source", "int32"),
          ("y", "float32"), ("x", "float32"), ("n_components", "int32"),
          ("centroid_y", "float32"), ("centroid_x", "float32"))
_TAIL = (("chi2", "float32"), ("n_pixels", "int32"), ("chi2_per_pixel", "float32"),
         ("n_iter", "int32"), ("status", "string"), ("flags", "int32"), ("error", "string"))


def _blend_flags(res) -> int:
    return {"failed": FLAG_FAILED, "diverged": FLAG_DIVERGED, "max_iter": FLAG_MAX_ITER}.get(
        res.status, 0)


def _catalog_table(results: list, ids: list[str], positions: list[int]):
    """One row per source (one row with source -1 for a blend without sources or one that
    failed); per-band columns ``flux_<band>`` (model) and ``flux_conserved_<band>``."""
    rows, errors = [], {}
    for i, res in enumerate(results):
        base = {"blend_id": ids[i], "position": positions[i], "n_iter": int(res.n_iter),
                "status": res.status, "error": res.error}
        flags = _blend_flags(res)
        m = None
        if res.error is None:
            try:
                m = measure(res)
            except Exception as err:
                errors[i] = f"{type(err).__name__}: {err}"
                flags |= FLAG_NO_MEASUREMENT
        if m is None or m.centers.shape[0] == 0:
            rows.append({**base, "source": -1, "flags": flags,
                         "error": res.error or errors.get(i)})
            continue
        extra = getattr(m, "flags", None)  # per-source flags, where measure gives them
        for s in range(m.centers.shape[0]):
            row = {**base, "source": s, "y": m.centers[s, 0], "x": m.centers[s, 1],
                   "n_components": m.n_components[s], "centroid_y": m.centroids[s, 0],
                   "centroid_x": m.centroids[s, 1], "chi2": m.chi2[s],
                   "n_pixels": m.n_pixels[s], "chi2_per_pixel": m.chi2_per_pixel[s]}
            f = flags
            if m.n_pixels[s] == 0:
                f |= FLAG_NO_PIXELS
            if not (np.isfinite(m.fluxes[s]).all() and np.isfinite(m.conserved_fluxes[s]).all()):
                f |= FLAG_NOT_FINITE
            row["flags"] = f
            if extra is not None:
                row["source_flags"] = np.asarray(extra)[s]
            for b, band in enumerate(m.bands):
                row[f"flux_{band}"] = m.fluxes[s, b]
                row[f"flux_conserved_{band}"] = m.conserved_fluxes[s, b]
            rows.append(row)
    return _to_arrow(rows), errors


def _to_arrow(rows: list[dict]):
    import pyarrow as pa

    names = [n for n, _ in _FIXED]
    bands = []
    for row in rows:
        for k in row:
            if k.startswith("flux_") and k not in bands:
                bands.append(k)
    bands = sorted(b for b in bands if not b.startswith("flux_conserved_")) + sorted(
        b for b in bands if b.startswith("flux_conserved_"))
    types = dict(_FIXED) | dict(_TAIL) | {b: "float32" for b in bands}
    names = names + bands + [n for n, _ in _TAIL]
    if any("source_flags" in r for r in rows):
        names.append("source_flags")
        types["source_flags"] = "int64"
    cols = {}
    for n in names:
        values = [_plain(r.get(n)) for r in rows]
        cols[n] = pa.array(values, type=getattr(pa, types[n])())
    return pa.table(cols)


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return v  # NaN/inf stay floats (not null): null means "no value"
    return v


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    with _atomic_write(path) as fh:
        pq.write_table(table, fh)


# ------------------------------------------------------------------------------ client side


@dataclasses.dataclass(frozen=True)
class CatalogSummary:
    """What a :func:`deblend_catalog` run did.

    Attributes:
      out_dir: the output folder.
      n_blends: blends in the run's partitions.
      n_converged, n_max_iter, n_diverged, n_failed: blends by status.
      n_partitions: partitions of the run; n_skipped: of them, finished by an earlier run.
      failed_partitions: ``{name: error}`` of partitions whose task raised (re-run to redo).
      seconds: wall time; blends_per_second: blends deblended in this run per second.
    """

    out_dir: str
    n_blends: int
    n_converged: int
    n_max_iter: int
    n_diverged: int
    n_failed: int
    n_partitions: int
    n_skipped: int
    failed_partitions: dict
    seconds: float
    blends_per_second: float

    def __str__(self) -> str:
        lines = [
            f"{self.n_blends} blends in {self.n_partitions} partitions "
            f"({self.n_skipped} already done): {self.n_converged} converged, "
            f"{self.n_max_iter} at max_iter, {self.n_diverged} diverged, {self.n_failed} failed",
            f"{self.seconds:.1f} s, {self.blends_per_second:.2f} blends/s",
            f"results: {self.out_dir}/partitions/*/results.npz (read_results), catalog: "
            f"*/catalog.parquet (read_catalog), manifest: */manifest.json (read_manifest)",
        ]
        if self.failed_partitions:
            lines.append(f"{len(self.failed_partitions)} partition(s) failed (re-run to "
                         f"redo them): " + "; ".join(
                             f"{k}: {v}" for k, v in sorted(self.failed_partitions.items())))
        return "\n".join(lines)


def _chunks(source: Iterable, batch_size: int):
    chunk = []
    for item in source:
        chunk.append(item)
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _is_bag(source) -> bool:
    try:
        import dask.bag as db
    except ImportError:
        return False
    return isinstance(source, db.Bag)


def deblend_catalog(
    source,
    out_dir,
    client=None,
    *,
    batch_size: int = 64,
    detect: bool = False,
    use_mask: bool = True,
    bad_bits=None,
    mask_planes: dict | None = None,
    retries: int = 3,
    progress: bool = True,
    compile_cache: str | None = None,
    **options,
) -> CatalogSummary:
    """Deblend many blends on a Dask cluster into ``out_dir`` (see the module docstring).

    Args:
      source: a sequence or iterator of inputs (``(observation, centers)`` pairs,
        observations (sources detected), or paths of npz/FITS files in the CLI's formats),
        a mapping ``{blend_id: input}``, or a ``dask.bag`` of inputs (each bag partition is
        one partition; ``batch_size`` is then not used). In-memory inputs travel inside
        their tasks (so a task can be rerun on any worker); for large sets pass paths or a
        bag, whose partitions the workers read themselves.
      out_dir: output folder (created). A re-run into it skips finished partitions.
      client: a ``distributed.Client``; default the current one, else a ``LocalCluster``
        started (and closed) for this call.
      batch_size: blends per partition (one task, one ``deblend_batch`` call).
      detect: detect the sources of file inputs (ignore their catalogs).
      use_mask: apply file inputs' masks.
      bad_bits: which bits of an integer mask are bad (as for
        :func:`scarlet_jax.inputs.read_blend`).
      mask_planes: ``{name: bit}`` names for the mask's bits (as for ``read_blend``).
      retries: times the scheduler retries a partition whose task failed or whose worker
        died.
      progress: show dask's progress bar and print the summary.
      compile_cache: a JAX persistent compilation cache folder for the workers.
      **options: deblend options (see :func:`~scarlet_jax.deblend`).

    Returns:
      A :class:`CatalogSummary`.

    Raises:
      BadInputError: bad options, a bad ``batch_size``, or ``out_dir`` holds results made
        with other options, input settings or scarlet_jax version.
    """
    distributed = _need_dask()
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise BadInputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _check_run(out, _run_record(options, detect, use_mask, bad_bits, mask_planes))
    settings = _Settings(str(out), dict(options), bool(detect), bool(use_mask), compile_cache,
                         bad_bits, None if mask_planes is None else dict(mask_planes))
    own_cluster = None
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            own_cluster = distributed.LocalCluster(processes=True, threads_per_worker=1)
            client = distributed.Client(own_cluster)
    t0 = time.perf_counter()
    try:
        futures, labels, done, names = _submit(client, source, batch_size, settings, retries)
        if progress and futures:
            distributed.progress(futures)
        manifests, failed = list(done), {}
        for label, fut in zip(labels, futures, strict=True):
            try:
                got = fut.result()
            except Exception as err:
                failed[label] = f"{type(err).__name__}: {err}"
                continue
            manifests.extend(got if isinstance(got, list) else [got])
        if _is_bag(source):
            names = [m["partition"] for m in sorted(manifests, key=lambda m: m["partition"])]
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    _write_json(out / "index.json", {"partitions": names})
    summary = _summarise(out, manifests, failed, len(names), time.perf_counter() - t0)
    if progress:
        print(summary, file=sys.stderr)
    return summary


def _submit(client, source, batch_size, settings, retries):
    """Submit one task per unfinished partition; returns (futures, their partitions'
    names, manifests of finished partitions, partition names in input order)."""
    from dask import delayed

    parts = Path(settings.out_dir) / "partitions"
    if _is_bag(source):
        tasks = [delayed(run_bag_partition, pure=False)(p, i, settings)
                 for i, p in enumerate(source.to_delayed())]
        labels = [f"bag partition {i}" for i in range(len(tasks))]
        return client.compute(tasks, retries=retries), labels, [], []
    if isinstance(source, Mapping):
        keyed = ((str(k), v) for k, v in source.items())
    else:
        keyed = ((None, v) for v in source)
    futures, labels, done, names, seen, position = [], [], [], [], {}, 0
    for index, chunk in enumerate(_chunks(keyed, batch_size)):
        ids = _unique([k if k is not None else blend_id(v) for k, v in chunk], seen)
        inputs = [v for _, v in chunk]
        name = _partition_name(index, ids)
        names.append(name)
        positions = list(range(position, position + len(chunk)))
        position += len(chunk)
        if _finished(parts / name):
            done.append({**json.loads((parts / name / "manifest.json").read_text()),
                         "skipped": True})
            continue
        # In-memory inputs travel inside the task (not scattered): scattered data dies with
        # its worker, while a task's own arguments let the scheduler rerun it anywhere.
        fut = client.submit(run_partition, name, inputs, ids, positions, settings,
                            key=f"scarlet_jax-{name}-{os.getpid()}-{time.monotonic_ns()}",
                            retries=retries, pure=False)
        futures.append(fut)
        labels.append(name)
    return futures, labels, done, names


def _summarise(out: Path, manifests: list, failed: dict, n_partitions: int,
               seconds: float) -> CatalogSummary:
    counts = {"converged": 0, "max_iter": 0, "diverged": 0, "failed": 0}
    fresh = 0
    for m in manifests:
        for b in m["blends"]:
            counts[b["status"]] = counts.get(b["status"], 0) + 1
        if not m.get("skipped"):
            fresh += m["n_blends"]
    return CatalogSummary(
        out_dir=str(out),
        n_blends=sum(counts.values()),
        n_converged=counts["converged"],
        n_max_iter=counts["max_iter"],
        n_diverged=counts["diverged"],
        n_failed=counts["failed"],
        n_partitions=n_partitions,
        n_skipped=sum(1 for m in manifests if m.get("skipped")),
        failed_partitions=failed,
        seconds=seconds,
        blends_per_second=fresh / seconds if seconds > 0 else 0.0,
    )


# ------------------------------------------------------------------------------ readers


def _partition_folders(out_dir) -> list[Path]:
    out = Path(out_dir)
    index = out / "index.json"
    if not index.exists():
        raise FileNotFoundError(f"{out}: no index.json (not a deblend_catalog output folder)")
    names = json.loads(index.read_text())["partitions"]
    folders = [out / "partitions" / n for n in names]
    unfinished = [f.name for f in folders if not _finished(f)]
    if unfinished:
        raise BadFileError(
            f"{out}: {len(unfinished)} unfinished partition(s) ({', '.join(unfinished[:3])}"
            f"{', ...' if len(unfinished) > 3 else ''}); run deblend_catalog again to finish"
        )
    return folders


def read_results(out_dir) -> list:
    """All results of the last run into ``out_dir``, in input order.

    Returns:
      A list of :class:`~scarlet_jax.result.DeblendResult`; a blend that failed has
      ``status == "failed"`` and its ``error`` (and no observation if its file was bad).
    """
    out = []
    for folder in _partition_folders(out_dir):
        out.extend(load_results(folder / "results.npz"))
    return out


def read_manifest(out_dir) -> list[dict]:
    """Per-blend manifest entries of the last run into ``out_dir``, in input order (each
    with its ``partition``)."""
    out = []
    for folder in _partition_folders(out_dir):
        manifest = json.loads((folder / "manifest.json").read_text())
        out.extend({**b, "partition": manifest["partition"]} for b in manifest["blends"])
    return out


def read_catalog(out_dir, pandas: bool | None = None):
    """The whole source catalog of ``out_dir`` as one table.

    Args:
      out_dir: a :func:`deblend_catalog` output folder.
      pandas: True: a ``pandas.DataFrame``; False: a ``pyarrow.Table``; None (default):
        pandas when it is installed, else pyarrow.

    Returns:
      One row per source (a failed blend: one row with ``source == -1`` and its
      ``error``); columns as described in the README (bands missing from some blends are
      null there).
    """
    _need_dask()
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f / "catalog.parquet") for f in _partition_folders(out_dir)]
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    if pandas is None:
        try:
            import pandas  # noqa: F401
        except ImportError:
            return table
        pandas = True
    return table.to_pandas() if pandas else table


# ------------------------------------------------------------------------------ CLI


def run_batch_command(inputs: list, out_dir, *, workers: int | None, scheduler: str | None,
                      options: dict, detect: bool, use_mask: bool, progress: bool,
                      bad_bits=None, mask_planes: dict | None = None,
                      compile_cache: str | None = None) -> int:
    """``scarlet-jax batch ... --workers N | --scheduler ADDRESS``: deblend the input files
    on a new ``LocalCluster`` of N single-threaded worker processes, or on the cluster at
    ADDRESS; returns the CLI's exit code: 0 all blends deblended, 3 some inputs failed (each
    is a row with its error in the manifest and catalog), 1 a partition did not finish.

    Raises:
      BadInputError: dask is not installed, bad ``workers``, or no input could be deblended.
    """
    try:
        distributed = _need_dask()
    except ImportError as err:
        raise BadInputError(str(err)) from None
    if compile_cache is None:
        compile_cache = jax.config.jax_compilation_cache_dir
    if scheduler:
        client, cluster = distributed.Client(scheduler), None
    else:
        if workers is not None and workers < 1:
            raise BadInputError(f"--workers must be >= 1, got {workers}")
        cluster = distributed.LocalCluster(n_workers=workers or 1, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        summary = deblend_catalog([str(p) for p in inputs], out_dir, client, detect=detect,
                                  use_mask=use_mask, bad_bits=bad_bits,
                                  mask_planes=mask_planes, progress=progress,
                                  compile_cache=compile_cache, **options)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not progress:
        print(summary)
    if summary.n_blends and summary.n_failed == summary.n_blends:
        raise BadInputError(f"none of the {summary.n_blends} inputs could be deblended")
    if summary.failed_partitions:
        return 1
    return 3 if summary.n_failed else 0
