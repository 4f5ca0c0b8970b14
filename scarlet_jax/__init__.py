"""scarlet_jax: a scarlet-lite style deblender written as a functional JAX program."""

from __future__ import annotations

from . import datasets, io, measure, prox
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

__version__ = "0.1.0"

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
    "prox",
    "io",
    "load",
    "measure",
    "make_observation",
    "plan",
    "warmup",
    "__version__",
]
