"""Options of a deblend: defaults, validation, and the split into the static
:class:`~scarlet_jax.fit.FitConfig` and the traced :class:`~scarlet_jax.fit.FitParams`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .constraints import SPARSITY, ConstraintConfig
from .errors import BadInputError
from .fit import OPTIMIZERS, FitConfig, FitParams

__all__ = ["DEFAULTS", "LSST_PIPELINE", "Options", "resolve_options"]

#: Defaults (scarlet lite's library defaults, with the LSST pipeline's fit loop).
DEFAULTS: dict[str, Any] = dict(
    max_iter=300,
    e_rel=1e-3,
    min_iter=5,
    optimizer="adaprox",
    monotonic=True,
    symmetric=False,
    sparsity=None,
    sparsity_thresh=1.0,
    fit_radius=1,
    bg_thresh=0.25,
    initial_bg_thresh=0.5,
    min_snr=50.0,
    max_components=2,
    fit_spectra=True,
    weighted_spectra=False,
    resize=3,
    grow=5,
    grow_margin=10,
    morph_step=0.01,
    spectrum_step_noise=0.1,
    spectrum_step_rel=0.01,
    divergence_factor=1e3,
    max_sources=1000,
    block=8,
)

#: The LSST pipeline recipe used for scarlet lite's reference fit of hsc_cosmos_35.
LSST_PIPELINE: dict[str, Any] = dict(bg_thresh=1.0, initial_bg_thresh=1.0, min_snr=50.0)


@dataclasses.dataclass(frozen=True)
class Options:
    """Validated options, plus the fit's static config and traced params."""

    values: dict
    config: FitConfig
    params: FitParams

    def __getitem__(self, key):
        return self.values[key]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise BadInputError(message)


def resolve_options(**options) -> Options:
    """Merge ``options`` into :data:`DEFAULTS` and validate them.

    Raises:
      BadInputError: an unknown option, or a value out of range (named in the message).
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    _check(not unknown, f"unknown option(s) {unknown}; known: {sorted(DEFAULTS)}")
    v = {**DEFAULTS, **options}
    for name in ("monotonic", "symmetric", "fit_spectra", "weighted_spectra"):
        _check(isinstance(v[name], (bool, int)) and v[name] in (0, 1),
               f"{name} must be True or False, got {v[name]!r}")
    for name in ("max_iter", "min_iter", "resize", "grow", "grow_margin", "fit_radius",
                 "max_components", "block"):
        val = v[name]
        _check(
            isinstance(val, int) and not isinstance(val, bool) and val >= 0,
            f"{name} must be an integer >= 0, got {val!r}",
        )
    _check(v["block"] >= 1, f"block must be >= 1, got {v['block']}")
    _check(v["max_components"] >= 1, f"max_components must be >= 1, got {v['max_components']}")
    for name in ("e_rel", "morph_step", "divergence_factor"):
        val = v[name]
        _check(
            isinstance(val, (int, float)) and math.isfinite(val) and val > 0,
            f"{name} must be a finite number > 0, got {val!r}",
        )
    for name in ("bg_thresh", "initial_bg_thresh", "sparsity_thresh", "min_snr",
                 "spectrum_step_noise", "spectrum_step_rel"):
        val = v[name]
        _check(
            isinstance(val, (int, float)) and math.isfinite(val) and val >= 0,
            f"{name} must be a finite number >= 0, got {val!r}",
        )
    _check(v["optimizer"] in OPTIMIZERS,
           f"unknown optimizer {v['optimizer']!r}; choose one of {OPTIMIZERS}")
    _check(v["sparsity"] in SPARSITY,
           f"unknown sparsity {v['sparsity']!r}; choose one of {SPARSITY}")
    mx = v["max_sources"]
    _check(mx is None or (isinstance(mx, int) and mx >= 1),
           f"max_sources must be None or an integer >= 1, got {mx!r}")
    config = FitConfig(
        max_iter=v["max_iter"],
        min_iter=v["min_iter"],
        optimizer=v["optimizer"],
        resize=v["resize"],
        grow=v["grow"],
        block=v["block"],
        constraints=ConstraintConfig(
            monotonic=bool(v["monotonic"]),
            symmetric=bool(v["symmetric"]),
            sparsity=v["sparsity"],
            fit_radius=v["fit_radius"],
        ),
    )
    params = FitParams.make(
        e_rel=v["e_rel"],
        morph_step=v["morph_step"],
        spectrum_step_noise=v["spectrum_step_noise"],
        spectrum_step_rel=v["spectrum_step_rel"],
        divergence_factor=v["divergence_factor"],
        bg_thresh=v["bg_thresh"],
        sparsity_thresh=v["sparsity_thresh"],
    )
    return Options(values=v, config=config, params=params)
