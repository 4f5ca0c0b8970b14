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
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "OFF", "cache_dir", "enable_compilation_cache"]

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
