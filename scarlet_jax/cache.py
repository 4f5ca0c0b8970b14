"""JAX's persistent compilation cache, on by default for the fitting entry points.

:func:`~scarlet_jax.deblend`, :func:`~scarlet_jax.deblend_batch`, :func:`~scarlet_jax.warmup`
and the CLI call :func:`enable_compilation_cache` before they compile, so a new process
loads the compiled programs from disk instead of compiling them again. Importing
:mod:`scarlet_jax` changes no JAX setting; the first fit does, once.

- Where: ``$SCARLET_JAX_CACHE`` (default ``~/.cache/scarlet_jax/jax``), in a subfolder
  named after the jax and jaxlib versions (``jax-0.10.2-jaxlib-0.10.2``), so versions
  never share entries.
- Opt out: ``SCARLET_JAX_CACHE=off`` (or ``0``, ``none``, ``false``).
- A cache directory the user set already (``jax_compilation_cache_dir``) is kept as is.
- Every program is cached (``jax_persistent_cache_min_compile_time_secs = 0`` and
  ``jax_persistent_cache_min_entry_size_bytes = 0``): a fit's programs take seconds to
  compile, and even its small helpers are worth a disk read in a fresh process.

JAX's cache skips only XLA's compilation: a fresh process still traces and lowers every
program (for a fit's block program, as long as compiling it). So the scheduler's programs
(the block program and the start of a fit) also go through :func:`compiled_program`, which
stores the compiled *executable* (``jax.experimental.serialize_executable``) in
``<cache folder>/executables``, keyed by the program's name, the shapes, dtypes and tree of
its arguments, its static arguments, the backend and device kind, and a hash of this
package's source (the folder is already per jax/jaxlib version). A warm process loads it
and runs it, with no tracing, lowering or compiling. Any entry that fails to load (corrupt,
truncated, from another build) is compiled again and rewritten. The same opt-out
(``SCARLET_JAX_CACHE=off``) switches the store off; then the programs are plain ``jax.jit``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import threading
from pathlib import Path

__all__ = ["CACHE_ENV", "OFF", "cache_dir", "enable_compilation_cache", "compiled_program",
           "program_key", "is_stored", "stored_labels", "is_store_on"]

CACHE_ENV = "SCARLET_JAX_CACHE"
OFF = ("off", "0", "none", "false", "no")


def cache_dir(path: str | None = None) -> str | None:
    """The versioned cache folder for ``path`` (default ``$SCARLET_JAX_CACHE`` or
    ``~/.cache/scarlet_jax/jax``), or None when the cache is switched off."""
    import jax  # lazily: the CLI calls this before any jax import (see cli.py)
    import jaxlib

    root = path if path is not None else os.environ.get(CACHE_ENV)
    if root is not None and root.strip().lower() in OFF:
        return None
    root = root or str(Path.home() / ".cache" / "scarlet_jax" / "jax")
    return str(Path(root).expanduser() / f"jax-{jax.__version__}-jaxlib-{jaxlib.__version__}")


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache (see the module docstring).

    Returns:
      The cache folder in use, or None when switched off. Calling it again is cheap; a
      folder already configured (by the user, or an earlier call) is left in place unless
      ``path`` is given.
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current and path is None:
        return current
    folder = cache_dir(path)
    if folder is None:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


# ------------------------------------------------------------------ executable store

_MAGIC = b"SJEX1"


@functools.lru_cache(maxsize=1)
def _source_hash() -> str:
    """sha256 of this package's source files (any edit makes new keys; pure per process)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _leaf_signature(x) -> tuple:
    if isinstance(x, (bool, int, float, complex)):
        return ("py", type(x).__name__)  # a weak-typed scalar in jit
    sig = (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)))
    sharding = getattr(x, "sharding", None)  # a program for sharded lanes is another program
    if sharding is not None and len(sharding.device_set) > 1:
        return sig + (repr(sharding),)
    return sig


def _signature(fn, args, static: dict) -> tuple:
    import jax

    leaves, tree = jax.tree.flatten(args)
    return (fn.__name__, str(tree), tuple(_leaf_signature(x) for x in leaves),
            tuple(sorted((k, repr(v)) for k, v in static.items())))


def _context_key(text: str) -> str:
    import jax

    device = jax.local_devices()[0]
    return hashlib.sha256(repr((text, device.platform, device.device_kind,
                                _source_hash())).encode()).hexdigest()


def _label_path(label: str) -> Path | None:
    store = _store_dir()
    return None if store is None else store / "labels" / _context_key(label)


def is_stored(label: str) -> bool:
    """True when a program stored with ``label`` (see :func:`compiled_program`) is in the
    store for this backend and package source (then it needs no compile)."""
    path = _label_path(label)
    return path is not None and path.exists()


def stored_labels(prefix: str = "") -> list[str]:
    """The labels starting with ``prefix`` of the programs in the store for this backend and
    package source (each :func:`is_stored`), sorted; [] with the cache off.

    A label file is read once per process: its name is the hash of its text and it is
    written whole (:func:`_write_label`), so a name's text never changes. Each call lists
    the folder, so a label another thread or process writes is seen by the next call.
    """
    store = _store_dir()
    if store is None:
        return []
    folder = store / "labels"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    labels = []
    for name in names:
        if (folder, name) not in _LABELS:
            _LABELS[folder, name] = _read_label(folder / name)
        label = _LABELS[folder, name]
        if label is not None and label.startswith(prefix):
            labels.append(label)
    return sorted(labels)


def _read_label(path: Path) -> str | None:
    """The label in ``path`` when the file is one of this backend's and package source's
    (its name is :func:`_context_key` of its text), else None (a stray or foreign file)."""
    try:
        label = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    return label if path.name == _context_key(label) else None


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file (or none) or all of
    the new one. Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_label(path: Path, label: str) -> None:
    """Write ``label`` to ``path`` whole (a read-only or full disk: no label)."""
    try:
        _write_whole(path, label.encode())
    except OSError:
        return


def is_store_on() -> bool:
    """Whether :func:`compiled_program` uses the executable store (the cache is on)."""
    return _store_dir() is not None


def program_key(fn, args, static: dict) -> str:
    """The store's key of ``fn(*args, **static)``: a sha256 over the program's name, its
    arguments' tree, shapes, dtypes and weak types, ``repr`` of its static arguments, the
    backend and device kind, and this package's source hash."""
    return _context_key(repr(_signature(fn, args, static)))


def _store_dir() -> Path | None:
    folder = cache_dir()
    return None if folder is None else Path(folder) / "executables"


def _load(path: Path):
    """The executable stored at ``path``, or None when absent or unreadable."""
    import jax
    from jax.experimental import serialize_executable

    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        head, digest, payload = raw[:5], raw[5:37], raw[37:]
        if head != _MAGIC or hashlib.sha256(payload).digest() != digest:
            return None
        blob, in_tree, out_tree, device_ids = pickle.loads(payload)
        local = {d.id: d for d in jax.local_devices()}
        if not all(i in local for i in device_ids):
            return None
        # on the devices it was compiled for (the default, every local device, would
        # make a one-device program expect one shard per device)
        return serialize_executable.deserialize_and_load(
            blob, in_tree, out_tree, execution_devices=[local[i] for i in device_ids])
    except Exception:  # any load failure: compile again (never a crash)
        return None


def _save(path: Path, compiled) -> None:
    from jax.experimental import serialize_executable

    try:
        device_ids = [d.id for d in compiled.runtime_executable().local_devices()]
        payload = pickle.dumps((*serialize_executable.serialize(compiled), device_ids))
        _write_whole(path, _MAGIC + hashlib.sha256(payload).digest() + payload)
    except Exception:  # a read-only or full disk, an unserialisable program: run without
        return


_LABELS: dict = {}  # (labels folder, file name) -> its label, None if not valid here
_PROGRAMS: dict = {}  # signature -> executable: this process's programs (as jit's own cache)
_BUSY: dict = {}  # signature -> Event set when the thread loading or compiling it is done
_LOCK = threading.Lock()
_HITS = [0]  # hits of JAX's persistent cache in this process (a monitoring listener counts)


def _count_hits(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _HITS[0] += 1


@functools.lru_cache(maxsize=1)
def _listen() -> None:
    """Count JAX's persistent-cache hits (once per process): an executable that came from
    JAX's cache serialises without its kernels on XLA:CPU (jax 0.10.2: the reloaded copy
    fails with "Function ... not found"), so such a compile is never stored."""
    import jax

    jax.monitoring.register_event_listener(_count_hits)


def compiled_program(fn, args: tuple, static: dict, label: str | None = None):
    """A callable that runs ``fn(*args, **static)`` for arguments shaped like ``args``.

    ``fn`` is a ``jax.jit`` function. With the cache on (see the module docstring) the
    compiled executable comes from this process's table, else from the store on disk, else
    it is compiled (``fn.lower(...).compile()``, through JAX's persistent cache) and stored
    (unless JAX's cache supplied it: see :func:`_listen`).
    The callable takes only the dynamic arguments, in order.
    With the cache off it is ``fn`` with ``static`` bound.
    ``label`` names the program for :func:`is_stored` and :func:`stored_labels` (a planner
    reads them before the arguments exist). Thread-safe: while one thread loads or compiles
    a program, another asking for the same one waits for it (the pipeline prepares programs
    ahead in a thread). ``args`` may hold ``jax.ShapeDtypeStruct`` leaves (nothing is run).
    """
    store = _store_dir()
    if store is None:
        return functools.partial(fn, **static)
    signature = _signature(fn, args, static)
    while True:  # one thread loads or compiles a program; others asking for it wait
        with _LOCK:
            program = _PROGRAMS.get(signature)
            if program is not None:
                return program
            busy = _BUSY.get(signature)
            if busy is None:
                busy = _BUSY[signature] = threading.Event()
                break
        busy.wait()  # the other thread's program is then in _PROGRAMS (or it failed: retry)
    try:
        path = store / f"{fn.__name__}-{program_key(fn, args, static)}.bin"
        program = _load(path)
        if program is None:
            _listen()
            hits = _HITS[0]
            program = fn.lower(*args, **static).compile()
            if _HITS[0] == hits:  # compiled here, not read from JAX's cache: storable
                _save(path, program)
        with _LOCK:
            _PROGRAMS[signature] = program
        marker = None if label is None else _label_path(label)
        if marker is not None and path.exists() and not marker.exists():
            _write_label(marker, label)
    finally:
        with _LOCK:
            _BUSY.pop(signature).set()
    return program
