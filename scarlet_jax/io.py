"""Result files: scarlet_jax's own ``.npz`` format, and scarlet lite's JSON model layout.

**The result file** (:func:`save` / :func:`load`) is one uncompressed numpy ``.npz`` (a zip
of ``.npy`` members, readable with ``np.load(path)`` and no pickles):

* ``observation.<field>`` for ``images``, ``variance``, ``weights`` (B, H, W), ``psfs``
  (B, kh, kw), ``model_psf`` (mh, mw), ``diff_kernel`` (B, kh, kw), ``noise_rms`` (B,);
* ``result.<field>`` for ``centers`` (S, 2), ``spectra`` (K, B), ``morphs`` (K, h, w),
  ``origins`` (K, 2), ``support`` (K, h, w), ``peaks`` (K, 2), ``component_source`` (K,),
  ``loss`` (n_iter,) (the fit history) and any other array field of ``DeblendResult``;
* ``metadata``: a 0-d unicode array holding a JSON object with ``format``
  ("scarlet_jax.result"), ``schema_version`` (:data:`SCHEMA_VERSION`),
  ``library_version``, ``bands``, ``shape`` (B, H, W), ``n_sources``, ``n_components``,
  ``box_shape``, ``fields`` (the non-array fields: ``n_iter``, ``converged``,
  ``diverged``, ``options``, ``error``), ``status``, and ``arrays``: for every member its
  ``shape``, ``dtype`` and ``sha256`` (of the C-ordered array bytes).

Loading checks the zip CRCs, the array list, shapes, dtypes and checksums and raises
:class:`~scarlet_jax.errors.BadFileError` for a truncated, corrupted or foreign file, or
one written with a newer schema. Writes are atomic: a temporary file in the target folder
is written, flushed and renamed over the target with ``os.replace``.

**scarlet lite** (:func:`export_scarlet_lite` / :func:`import_scarlet_lite`): the JSON
layout of ``lsst.scarlet.lite.io.ScarletModelData`` (``model_type``, ``blends`` keyed
"1", "2", ..., ``metadata`` with the flattened model PSF, ``version``), each source a list
of factorized components (own box ``origin``/``shape``, ``peak``, ``spectrum`` and the
flattened ``morph``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io as _io
import json
import os
import secrets
import warnings
import zipfile
from pathlib import Path

import jax
import numpy as np

from ._version import __version__
from .errors import BadFileError, BadInputError, InputWarning
from .observation import Observation
from .result import DeblendResult

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "export_scarlet_lite",
    "import_scarlet_lite",
    "load",
    "load_results",
    "save",
    "save_result",
    "save_results",
]

FORMAT = "scarlet_jax.result"
#: Format tag of a file holding several results (:func:`save_results`).
MANY_FORMAT = "scarlet_jax.results"
#: Version of the ``.npz`` layout; files with a larger number are refused.
SCHEMA_VERSION = 1
LITE_VERSION = "1.0.0"

def _observation_fields() -> tuple[str, ...]:
    """The array fields of :class:`Observation` (all but the static ``bands``)."""
    return tuple(f.name for f in dataclasses.fields(Observation) if f.name != "bands")

_ZIP_MAGIC = b"PK\x03\x04"


def _library_version() -> str:
    return __version__


# -------------------------------------------------------------------- JSON-safe option values


def _encode(value, name: str):
    """Python value -> JSON value that decodes back to an equal value of the same type."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return _encode(value.item(), name)
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{name}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise BadInputError(f"{name}: only string keys can be saved, got {bad[0]!r}")
        return {"__dict__": {k: _encode(v, f"{name}.{k}") for k, v in value.items()}}
    raise BadInputError(
        f"{name}: a {type(value).__name__} cannot be saved (use numbers, strings, bools, "
        "None, lists, tuples or dicts)"
    )


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        if set(value) == {"__dict__"}:
            return {k: _decode(v) for k, v in value["__dict__"].items()}
        raise ValueError(f"unexpected JSON object with keys {sorted(value)}")
    return value


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


# ------------------------------------------------------------------------------ save / load


@contextlib.contextmanager
def _atomic_write(path: Path):
    """Yield a binary file in ``path``'s folder; on success it is flushed, synced and renamed
    over ``path`` (``os.replace``); on any error it is removed and ``path`` is untouched.
    The file gets the usual permissions (0o666 less the umask)."""
    directory = path.parent if str(path.parent) else Path(".")
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _collect(result: DeblendResult, bare_ok: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and metadata of a result; ``bare_ok``: a failed result without an observation
    (its input could not be read) is stored without one."""
    if not isinstance(result, DeblendResult):
        raise BadInputError(f"expected a DeblendResult, got {type(result).__name__}")
    obs = result.observation
    bare = bare_ok and obs is None and result.error is not None
    if not isinstance(obs, Observation) and not bare:
        raise BadInputError(
            f"result.observation is a {type(obs).__name__}, not an Observation: nothing to save"
        )
    arrays: dict[str, np.ndarray] = {}
    for name in () if bare else _observation_fields():
        arrays[f"observation.{name}"] = np.asarray(getattr(obs, name))
    fields = {}
    for f in dataclasses.fields(result):
        if f.name == "observation":
            continue
        value = getattr(result, f.name)
        if isinstance(value, (np.ndarray, jax.Array)):
            arrays[f"result.{f.name}"] = np.asarray(value)
        else:
            fields[f.name] = _encode(value, f.name)
    for key, arr in arrays.items():
        if arr.dtype == object:
            raise BadInputError(f"{key}: object arrays cannot be saved")
    meta = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "library_version": _library_version(),
        "bands": [] if bare else list(obs.bands),
        "shape": [] if bare else list(obs.shape),
        "has_observation": not bare,
        "n_sources": int(np.asarray(result.centers).shape[0]),
        "n_components": int(np.asarray(result.spectra).shape[0]),
        "box_shape": list(np.asarray(result.morphs).shape[1:]),
        "status": result.status,
        "fields": fields,
        "arrays": {
            key: {"shape": list(arr.shape), "dtype": arr.dtype.str, "sha256": _sha256(arr)}
            for key, arr in arrays.items()
        },
    }
    return arrays, meta


def save(result: DeblendResult, path) -> Path:
    """Write a result to one ``.npz`` file (see the module docstring for the layout).

    The write is atomic: the file appears under ``path`` complete or not at all, and an
    existing file there is replaced only once the new one is fully written.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult` (also one with ``error`` set).
      path: target file name (used as given; ``.npz`` is the usual suffix).

    Returns:
      The path written.

    Raises:
      BadInputError: the result holds something that cannot be stored (the message names it).
    """
    path = Path(path)
    arrays, meta = _collect(result)
    text = json.dumps(meta, sort_keys=True)
    with _atomic_write(path) as fh:
        np.savez(fh, metadata=np.array(text), **arrays)
    return path


#: Alias of :func:`save` (the body of ``DeblendResult.save``).
save_result = save


def _read_npy(raw: bytes) -> np.ndarray:
    return np.load(_io.BytesIO(raw), allow_pickle=False)


def _open_zip(path: Path) -> zipfile.ZipFile:
    with open(path, "rb") as fh:
        head = fh.read(4)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        if head == _ZIP_MAGIC:
            raise BadFileError(
                f"{path}: truncated or corrupted npz archive ({err}); write it again"
            ) from None
        raise BadFileError(
            f"{path}: not a scarlet_jax result file (not an npz/zip archive)"
        ) from None


def _check_meta(meta, where: str) -> dict:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadFileError(f"{where}: not a scarlet_jax result file (format tag missing)")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadFileError(f"{where}: schema_version {version!r} is not an integer")
    if version > SCHEMA_VERSION:
        raise BadFileError(
            f"{where}: written with result schema {version} (scarlet_jax "
            f"{meta.get('library_version', '?')}); this scarlet_jax "
            f"({_library_version()}) reads schema <= {SCHEMA_VERSION}: upgrade scarlet_jax"
        )
    if version < 1:
        raise BadFileError(f"{where}: unknown schema_version {version}")
    for key in ("arrays", "fields", "bands"):
        if key not in meta:
            raise BadFileError(f"{where}: metadata has no {key!r}")
    return meta


@contextlib.contextmanager
def _corruption_is_bad_file(where: str):
    """Re-raise any error met while reading a result file (zip CRC errors, bad headers, bad
    JSON: all mean corruption) as :class:`BadFileError` naming the file."""
    try:
        yield
    except BadFileError:
        raise
    except Exception as err:
        raise BadFileError(
            f"{where}: corrupted result file ({type(err).__name__}: {err})"
        ) from None


def load(path) -> DeblendResult:
    """Read a result written by :func:`save`.

    Args:
      path: a ``.npz`` result file.

    Returns:
      The :class:`~scarlet_jax.result.DeblendResult`, array-equal to the one saved.

    Raises:
      FileNotFoundError: no such file.
      BadFileError: the file is truncated, corrupted (zip CRC or sha256 mismatch), not a
        result file, or written with a newer schema.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise BadFileError(f"{path}: is a folder, not a result file")
    zf = _open_zip(path)
    where = str(path)
    with zf, _corruption_is_bad_file(where):
        members = {info.filename for info in zf.infolist()}
        if "metadata.npy" not in members:
            raise BadFileError(f"{where}: not a scarlet_jax result file (no metadata)")
        text = _read_npy(zf.read("metadata.npy"))
        meta = _check_meta(json.loads(str(text)), where)
        expected = meta["arrays"]
        extra = sorted(members - {k + ".npy" for k in expected} - {"metadata.npy"})
        if extra:
            raise BadFileError(f"{where}: unexpected member(s) {extra}")
        arrays = _read_members(zf, expected, "", path)
    return _build(meta, arrays, where)


def _read_members(zf: zipfile.ZipFile, expected: dict, prefix: str, path: Path) -> dict:
    """The arrays listed in ``expected`` (stored as ``prefix + key``), each checked against
    its shape, dtype and sha256; keyed without the prefix."""
    where = str(path)
    members = {info.filename for info in zf.infolist()}
    arrays = {}
    for key, spec in expected.items():
        name = prefix + key + ".npy"
        if name not in members:
            raise BadFileError(f"{where}: array {prefix + key!r} is missing")
        if zf.getinfo(name).file_size > os.path.getsize(path):
            raise BadFileError(f"{where}: member {prefix + key!r} has an implausible size")
        arr = _read_npy(zf.read(name))
        if list(arr.shape) != list(spec["shape"]) or arr.dtype.str != spec["dtype"]:
            raise BadFileError(
                f"{where}: array {prefix + key!r} is {arr.dtype.str}{list(arr.shape)}, the "
                f"metadata says {spec['dtype']}{spec['shape']}"
            )
        if _sha256(arr) != spec["sha256"]:
            raise BadFileError(f"{where}: checksum mismatch in array {prefix + key!r} (corrupted)")
        arrays[key] = arr
    return arrays


def save_results(results, path) -> Path:
    """Write several results to one ``.npz`` (atomically).

    Result ``i``'s arrays are stored as ``r<i>.<key>`` with the keys of :func:`save`; the
    ``metadata`` member holds ``format`` ("scarlet_jax.results"), ``schema_version``,
    ``library_version`` and ``results``: one :func:`save` metadata object per result. A
    failed result whose input could not be read (``observation`` None) is stored without
    an observation and loads back the same way.

    Args:
      results: a sequence of :class:`~scarlet_jax.result.DeblendResult`.
      path: target file name.

    Returns:
      The path written.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    metas = []
    for i, result in enumerate(results):
        one, meta = _collect(result, bare_ok=True)
        arrays.update({f"r{i}.{k}": v for k, v in one.items()})
        metas.append(meta)
    meta = {
        "format": MANY_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "library_version": _library_version(),
        "results": metas,
    }
    with _atomic_write(path) as fh:
        np.savez(fh, metadata=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return path


def load_results(path) -> list[DeblendResult]:
    """Read a file written by :func:`save_results`; every array is checked as in
    :func:`load`.

    Raises:
      FileNotFoundError: no such file.
      BadFileError: truncated, corrupted, not a multi-result file, or a newer schema.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    where = str(path)
    zf = _open_zip(path)
    with zf, _corruption_is_bad_file(where):
        meta = json.loads(str(_read_npy(zf.read("metadata.npy"))))
        if not isinstance(meta, dict) or meta.get("format") != MANY_FORMAT:
            raise BadFileError(f"{where}: not a scarlet_jax multi-result file")
        parts = []
        for i, one in enumerate(meta["results"]):
            one = _check_meta(one, f"{where} result {i}")
            parts.append((one, _read_members(zf, one["arrays"], f"r{i}.", path)))
    return [_build(one, arrays, f"{where} result {i}") for i, (one, arrays) in enumerate(parts)]


def _build(meta: dict, arrays: dict[str, np.ndarray], where: str) -> DeblendResult:
    try:
        prefix = "observation."
        obs_kwargs = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        unknown = sorted(set(obs_kwargs) - set(_observation_fields()))
        if unknown:
            raise BadFileError(
                f"{where}: observation field(s) {unknown} unknown to this scarlet_jax; "
                "upgrade scarlet_jax"
            )
        has_obs = meta.get("has_observation", True)
        obs = Observation(**obs_kwargs, bands=tuple(meta["bands"])) if has_obs else None
        kwargs = {"observation": obs}
        names = {f.name for f in dataclasses.fields(DeblendResult)}
        for key, arr in arrays.items():
            if key.startswith("result."):
                kwargs[key[len("result.") :]] = arr
        for key, value in meta["fields"].items():
            kwargs[key] = _decode(value)
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise BadFileError(
                f"{where}: field(s) {unknown} unknown to this scarlet_jax; upgrade scarlet_jax"
            )
        return DeblendResult(**kwargs)
    except BadFileError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise BadFileError(
            f"{where}: incomplete result file ({type(err).__name__}: {err})"
        ) from None


# --------------------------------------------------------------------------- scarlet lite JSON


def _lite_blend(result: DeblendResult, origin) -> dict:
    if result.error is not None:
        raise BadInputError(f"cannot export a failed blend ({result.error})")
    _, height, width = result.observation.shape
    oy, ox = (int(v) for v in origin)
    sources = {}
    boxes = result.component_boxes()
    for s in range(result.n_sources):
        comps = []
        for k in np.nonzero(np.asarray(result.component_source) == s)[0]:
            y0, x0, y1, x1 = boxes[k]
            y0, x0 = max(int(y0), 0), max(int(x0), 0)
            y1, x1 = min(int(y1), height), min(int(x1), width)
            py, px = (int(v) for v in result.peaks[k])
            if y1 <= y0 or x1 <= x0:  # an empty box: keep a 1x1 zero box at the peak
                y0, x0, y1, x1 = py, px, py + 1, px + 1
                morph = np.zeros((1, 1), np.float32)
            else:
                sy, sx = (int(v) for v in result.origins[k])
                morph = np.asarray(result.morphs[k])[y0 - sy : y1 - sy, x0 - sx : x1 - sx]
            comps.append(
                {
                    "origin": [y0 + oy, x0 + ox],
                    "shape": [y1 - y0, x1 - x0],
                    "peak": [py + oy, px + ox],
                    "spectrum": [float(v) for v in np.asarray(result.spectra[k])],
                    "morph": [float(v) for v in morph.ravel()],
                    "component_type": "factorized",
                    "version": LITE_VERSION,
                }
            )
        sources[str(s)] = {"source_type": "source", "components": comps, "version": LITE_VERSION}
    return {
        "blend_type": "blend",
        "origin": [oy, ox],
        "shape": [int(height), int(width)],
        "sources": sources,
        "version": LITE_VERSION,
    }


def export_scarlet_lite(results, path, origins=None) -> Path:
    """Write results as scarlet lite's ``ScarletModelData`` JSON.

    Each component is cropped to its own box (clipped to the image); coordinates are image
    coordinates plus the blend's origin. The model PSF and band names are taken from the
    first result (all must agree).

    Args:
      results: a :class:`~scarlet_jax.result.DeblendResult` or a sequence of them (blends
        "1", "2", ... in order).
      path: the ``.json`` file to write (atomically).
      origins: optional (N, 2) (y, x) origin of each blend in a larger image (default 0).

    Returns:
      The path written.

    Raises:
      BadInputError: no results, a failed result, or results with different bands or model
        PSFs.
    """
    if isinstance(results, DeblendResult):
        results = [results]
    results = list(results)
    if not results:
        raise BadInputError("export_scarlet_lite: no results")
    origins = np.zeros((len(results), 2), int) if origins is None else np.asarray(origins, int)
    if origins.shape != (len(results), 2):
        raise BadInputError(f"origins {origins.shape}: expected ({len(results)}, 2)")
    first = results[0].observation
    for i, res in enumerate(results):
        obs = res.observation
        if tuple(obs.bands) != tuple(first.bands):
            raise BadInputError(f"result {i}: bands {obs.bands} differ from {first.bands}")
        if obs.model_psf.shape != first.model_psf.shape or not np.array_equal(
            obs.model_psf, first.model_psf
        ):
            raise BadInputError(f"result {i}: its model PSF differs from the first result's")
    model_psf = np.asarray(first.model_psf)
    data = {
        "model_type": "scarlet_model",
        "blends": {str(i + 1): _lite_blend(r, origins[i]) for i, r in enumerate(results)},
        "metadata": {
            "model_psf": [float(v) for v in model_psf.ravel()],
            "model_psf_shape": [1, *(int(n) for n in model_psf.shape)],
            "model_psf_dtype": str(model_psf.dtype),
            "bands": list(first.bands),
            "array_keys": ["model_psf"],
        },
        "version": LITE_VERSION,
    }
    path = Path(path)
    text = json.dumps(data)
    with _atomic_write(path) as fh:
        fh.write(text.encode())
    return path


def _int_key(key: str):
    try:
        return (0, int(key), key)
    except ValueError:
        return (1, 0, key)


def _lite_result(blend: dict, observation: Observation, where: str) -> DeblendResult:
    by, bx = (int(v) for v in blend.get("origin", (0, 0)))
    height, width = (int(v) for v in blend["shape"])
    if tuple(observation.shape[1:]) != (height, width):
        raise BadInputError(
            f"{where}: blend shape {(height, width)} does not match the observation "
            f"{tuple(observation.shape[1:])}"
        )
    n_bands = observation.n_bands
    comps = []
    keys = sorted(blend["sources"], key=_int_key)
    for s, key in enumerate(keys):
        source = blend["sources"][key]
        for c in source["components"]:
            ctype = c.get("component_type", "factorized")
            if ctype != "factorized":
                raise BadFileError(f"{where}: source {key}: component type {ctype!r} unsupported")
            if len(c["origin"]) != 2 or len(c["peak"]) != 2 or len(c["shape"]) != 2:
                raise BadFileError(f"{where}: source {key}: origin/peak/shape must be (y, x)")
            oy, ox = int(c["origin"][0]) - by, int(c["origin"][1]) - bx
            h, w = (int(v) for v in c["shape"])
            py, px = int(c["peak"][0]) - by, int(c["peak"][1]) - bx
            spectrum = np.asarray(c["spectrum"], np.float64)
            morph = np.asarray(c["morph"], np.float64)
            if spectrum.shape != (n_bands,):
                raise BadInputError(
                    f"{where}: source {key}: spectrum of {spectrum.size} bands, the "
                    f"observation has {n_bands}"
                )
            if morph.size != h * w:
                raise BadFileError(
                    f"{where}: source {key}: morph of {morph.size} values for a {h}x{w} box"
                )
            if not (0 <= py < height and 0 <= px < width):
                raise BadFileError(f"{where}: source {key}: peak {(py, px)} outside the blend")
            comps.append((s, (oy, ox, h, w), (py, px), spectrum, morph.reshape(h, w)))
    n_sources = len(keys)
    centers = np.zeros((n_sources, 2), np.float32)
    for s in range(n_sources):
        first = [c for c in comps if c[0] == s]
        if first:
            centers[s] = first[0][2]
    if not comps:
        raise BadFileError(f"{where}: blend has no components")
    half = 0
    for _, (oy, ox, h, w), (py, px), _, _ in comps:
        half = max(half, abs(py - oy), abs(oy + h - 1 - py), abs(px - ox), abs(ox + w - 1 - px))
    size = 2 * half + 1
    n = len(comps)
    morphs = np.zeros((n, size, size), np.float32)
    support = np.zeros((n, size, size), bool)
    origins = np.zeros((n, 2), np.int32)
    peaks = np.zeros((n, 2), np.int32)
    spectra = np.zeros((n, n_bands), np.float32)
    source_of = np.zeros((n,), np.int32)
    for k, (s, (oy, ox, h, w), (py, px), spectrum, morph) in enumerate(comps):
        sy, sx = py - half, px - half
        morphs[k, oy - sy : oy - sy + h, ox - sx : ox - sx + w] = morph
        support[k, oy - sy : oy - sy + h, ox - sx : ox - sx + w] = True
        origins[k] = sy, sx
        peaks[k] = py, px
        spectra[k] = spectrum
        source_of[k] = s
    return DeblendResult(
        observation=observation,
        centers=centers,
        spectra=spectra,
        morphs=morphs,
        origins=origins,
        support=support,
        peaks=peaks,
        component_source=source_of,
        loss=np.zeros((0,), np.float32),
        n_iter=0,
        converged=False,
        diverged=False,
        options={},
    )


def import_scarlet_lite(path, observation) -> list[DeblendResult]:
    """Read scarlet lite's ``ScarletModelData`` JSON into results.

    Each component goes into a slot box of one common odd size per blend, centred on its
    peak; its own box becomes the ``support``. Sources are numbered in the order of their
    keys; the source center is its first component's peak. The fit history is empty
    (``n_iter`` 0).

    Args:
      path: the JSON file.
      observation: the :class:`~scarlet_jax.observation.Observation` of the blend(s): one
        for every blend, or a sequence with one per blend (blends in key order "1", "2",
        ...). Its image must have the blend's shape.

    Returns:
      One :class:`~scarlet_jax.result.DeblendResult` per blend.

    Raises:
      FileNotFoundError: no such file.
      BadFileError: not valid JSON or not the scarlet lite layout.
      BadInputError: the observation does not fit the blends (shape, bands).
    """
    path = Path(path)
    where = str(path)
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadFileError(f"{where}: not a scarlet lite JSON model ({err})") from None
    if not isinstance(data, dict) or data.get("model_type") != "scarlet_model":
        raise BadFileError(f"{where}: not a scarlet lite model (model_type != 'scarlet_model')")
    try:
        blends = data["blends"]
        keys = sorted(blends, key=_int_key)
        if isinstance(observation, Observation):
            observations = [observation] * len(keys)
        else:
            observations = list(observation)
            if len(observations) != len(keys):
                raise BadInputError(
                    f"{where}: {len(keys)} blends but {len(observations)} observations"
                )
        meta = data.get("metadata") or {}
        bands = meta.get("bands")
        psf = meta.get("model_psf")
        results = []
        for key, obs in zip(keys, observations, strict=True):
            if not isinstance(obs, Observation):
                raise BadInputError(f"expected an Observation, got {type(obs).__name__}")
            if bands is not None and len(bands) != obs.n_bands:
                raise BadInputError(
                    f"{where}: the model has {len(bands)} bands {bands}, the observation "
                    f"{obs.n_bands}"
                )
            if bands is not None and tuple(bands) != tuple(obs.bands):
                warnings.warn(
                    f"{where}: model bands {tuple(bands)} differ from the observation's "
                    f"{tuple(obs.bands)}",
                    InputWarning,
                    stacklevel=2,
                )
            if psf is not None:
                shape = tuple(meta.get("model_psf_shape", ()))[-2:]
                arr = np.asarray(psf, np.float64).reshape(shape) if shape else None
                if arr is None or arr.shape != obs.model_psf.shape or not np.allclose(
                    arr, obs.model_psf, rtol=1e-4, atol=1e-6
                ):
                    warnings.warn(
                        f"{where}: the model PSF differs from the observation's; the model "
                        "is rendered with the observation's difference kernel",
                        InputWarning,
                        stacklevel=2,
                    )
            results.append(_lite_result(blends[key], obs, f"{where} blend {key}"))
        return results
    except (BadFileError, BadInputError):
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BadFileError(
            f"{where}: not the scarlet lite model layout ({type(err).__name__}: {err})"
        ) from None

