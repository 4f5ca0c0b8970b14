"""scarlet_jax: a scarlet-lite style deblender written as a functional JAX program."""

from __future__ import annotations

from . import datasets, inputs, io, measure, monotonicity, prox, tables
from ._version import __version__
from .batch import deblend_batch
from .components import Components, Placement
from .deblend import deblend
from .detect import detect
from .errors import BadFileError, BadInputError, InputWarning
from .io import load
from .observation import Observation, make_observation
from .options import DEFAULTS, LSST_PIPELINE
from .pipeline import plan, warmup
from .result import DeblendResult


def __getattr__(name: str):
    """``sj.display`` (pictures; needs matplotlib) is imported on first use, so importing
    scarlet_jax never imports matplotlib."""
    if name == "display":
        import importlib

        return importlib.import_module(".display", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BadFileError",
    "BadInputError",
    "Components",
    "DEFAULTS",
    "DeblendResult",
    "InputWarning",
    "LSST_PIPELINE",
    "Observation",
    "Placement",
    "datasets",
    "deblend",
    "deblend_batch",
    "detect",
    "display",
    "inputs",
    "monotonicity",
    "prox",
    "tables",
    "io",
    "load",
    "measure",
    "make_observation",
    "plan",
    "warmup",
    "__version__",
]
