"""The real console script, run in a subprocess (shared by the CLI tests)."""

from __future__ import annotations


def console_script():
    import shutil
    import sys
    from pathlib import Path

    here = Path(sys.executable).parent / "scarlet-jax"
    found = str(here) if here.exists() else shutil.which("scarlet-jax")
    assert found, "the scarlet-jax console script is not installed (pip install -e .)"
    return found


def run_cli(*args, cwd, stdin=None, timeout=600):
    """Run ``scarlet-jax ARGS`` in a subprocess (importing this checkout); returns the
    CompletedProcess with text stdout/stderr."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu")
    env.setdefault("SCARLET_JAX_CACHE", str(Path(cwd) / ".jax_cache"))
    return subprocess.run([console_script(), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=stdin)


def no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr, proc.stderr
