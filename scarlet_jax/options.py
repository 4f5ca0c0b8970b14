"""Options of a deblend: defaults, validation, and the split into the static
:class:`~scarlet_jax.fit.FitConfig` and the traced :class:`~scarlet_jax.fit.FitParams`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from .constraints import SPARSITY, ConstraintConfig
from .errors import BadInputError
from .fit import OPTIMIZERS, FitConfig, FitParams

__all__ = ["DEFAULTS", "LSST_PIPELINE", "MAX_ITER_LIMIT", "OPTION_DOCS", "Options",
           "option_table", "resolve_options"]

#: Initialisations: scarlet lite's chi^2 detection image, or a starlet-denoised one.
INITS = ("chi2", "wavelet")

#: Defaults (scarlet lite's library defaults, with the LSST pipeline's fit loop).
DEFAULTS: dict[str, Any] = dict(
    max_iter=300,
    e_rel=1e-3,
    min_iter=5,
    stop_window=10,
    optimizer="adaprox",
    init="chi2",
    monotonic=True,
    symmetric=False,
    sparsity=None,
    sparsity_thresh=1.0,
    fit_radius=1,
    bg_thresh=0.25,
    initial_bg_thresh=0.5,
    init_noise_relative=True,
    init_subtract=True,
    symmetric_dominated=True,
    init_own_snr=True,
    min_snr=50.0,
    max_components=2,
    fit_spectra=True,
    weighted_spectra=False,
    final_spectra=True,
    resize=3,
    grow=5,
    grow_margin=5,
    morph_step=0.01,
    spectrum_step_noise=0.1,
    spectrum_step_rel=0.01,
    divergence_factor=1e3,
    max_sources=1000,
    block=8,
)

#: What each option of :data:`DEFAULTS` does (one line each; the README's options table and
#: the CLI's ``--help`` are rendered from it, and a test checks that every option has one).
OPTION_DOCS: dict[str, str] = dict(
    max_iter="most iterations of the fit",
    e_rel="stop when the loss changes by less than this fraction of itself per iteration",
    min_iter="fewest iterations before the convergence test",
    stop_window="stop when the loss changed by less than e_rel per iteration on average over "
                "this many iterations (1: scarlet lite's one-step test)",
    optimizer="'adaprox' (proximal AMSGrad, scarlet lite's) or 'fista'",
    init="initial morphologies from the chi^2 detection image ('chi2', scarlet lite's) "
         "or a starlet-denoised one ('wavelet')",
    monotonic="make morphologies decrease monotonically from the peak",
    symmetric="make morphologies symmetric about the peak: one bool, or one per center",
    sparsity="None, 'l0' or 'l1' sparsity of the morphologies",
    sparsity_thresh="the L0/L1 threshold, in units of the noise rms",
    fit_radius="half-size (pixels) of the window in which the peak is re-found",
    bg_thresh="morphology pixels below this many noise rms are set to 0 during the fit",
    initial_bg_thresh="the same threshold for the initial morphologies",
    init_noise_relative="initial morphology cut in units of the detection image's noise "
                        "(False: scarlet lite's mean(noise_rms) * initial_bg_thresh)",
    init_subtract="initialise sources from the brightest down, each on the detection image "
                  "minus the brighter ones",
    symmetric_dominated="make a source symmetric when its centre is dominated by brighter "
                        "neighbours' light",
    init_own_snr="with init_subtract, count only a source's own share of the light at its "
                 "centre toward min_snr (a faint source on a bright wing gets one component)",
    min_snr="signal-to-noise needed per extra component at initialisation",
    max_components="components per source (1 or 2)",
    fit_spectra="refit all spectra jointly after initialisation",
    weighted_spectra="weight those spectrum fits by the inverse variance",
    final_spectra="after the fit, set every spectrum to its weighted non-negative "
                  "least-squares optimum for the fitted morphologies",
    resize="resize the boxes every this many iterations (0: never)",
    grow="pixels added around the significant pixels when a box is resized",
    grow_margin="pixels of room in the slot box around each initial box",
    morph_step="morphology step size (relative to the peak value)",
    spectrum_step_noise="spectrum step of at least this x the band's noise rms",
    spectrum_step_rel="spectrum step of at least this x the mean of the spectrum",
    divergence_factor="a loss above this x (initial loss + pixels) marks the fit diverged",
    max_sources="most sources per blend (None: no limit); more is an error",
    block="iterations per lax.scan block between convergence checks",
)


def option_table() -> str:
    """The options as a Markdown table (name, default, meaning), as the README shows it."""
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for name, value in DEFAULTS.items():
        lines.append(f"| `{name}` | `{value!r}` | {OPTION_DOCS.get(name, '(undocumented)')} |")
    return "\n".join(lines)


#: The LSST pipeline recipe used for scarlet lite's reference fit of hsc_cosmos_35.
LSST_PIPELINE: dict[str, Any] = dict(bg_thresh=1.0, initial_bg_thresh=1.0, min_snr=50.0,
                                     stop_window=1, init_noise_relative=False,
                                     init_subtract=False, symmetric_dominated=False,
                                     init_own_snr=False, final_spectra=False)


@dataclasses.dataclass(frozen=True)
class Options:
    """Validated options, plus the fit's static config and traced params."""

    values: dict
    config: FitConfig
    params: FitParams

    def __getitem__(self, key):
        return self.values[key]


#: The largest ``max_iter`` accepted: the loss history holds ``max_iter`` float32 values
#: per blend, so a typo like ``max_iter=10**9`` would ask for gigabytes.
MAX_ITER_LIMIT = 100_000

_BOOLS = ("monotonic", "fit_spectra", "weighted_spectra", "init_noise_relative",
          "init_subtract", "symmetric_dominated", "init_own_snr", "final_spectra")
_COUNTS = ("max_iter", "min_iter", "stop_window", "resize", "grow", "grow_margin", "fit_radius",
           "max_components", "block")
_POSITIVE = ("e_rel", "morph_step", "divergence_factor", "min_snr")
_NON_NEGATIVE = ("bg_thresh", "initial_bg_thresh", "sparsity_thresh", "spectrum_step_noise",
                 "spectrum_step_rel")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise BadInputError(message)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_)) or (_is_int(value) and value in (0, 1))


def _symmetric(value) -> bool | tuple[bool, ...]:
    """``symmetric``: one bool for every component, or a sequence of one bool per source."""
    if _is_bool(value):
        return bool(value)
    message = (f"symmetric must be True or False, or a sequence of one True/False per source, "
               f"got {value!r}")
    try:
        ndim = np.ndim(value)
    except ValueError:  # ragged
        ndim = -1
    _check(not isinstance(value, (str, bytes, dict)) and ndim == 1, message)
    flags = list(value)
    _check(all(_is_bool(f) for f in flags), message)
    return tuple(bool(f) for f in flags)


def resolve_options(**options) -> Options:
    """Merge ``options`` into :data:`DEFAULTS` and validate them.

    Integers and reals may be Python or numpy scalars (they are converted to ``int`` and
    ``float``); booleans are not accepted as numbers.

    Raises:
      BadInputError: an unknown option, a value of the wrong type or out of range, or an
        unknown optimizer or sparsity name (the option is named in the message).
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    _check(not unknown, f"unknown option(s) {unknown}; known: {sorted(DEFAULTS)}")
    v = {**DEFAULTS, **options}
    for name in _BOOLS:
        _check(_is_bool(v[name]), f"{name} must be True or False, got {v[name]!r}")
        v[name] = bool(v[name])
    v["symmetric"] = _symmetric(v["symmetric"])
    for name in _COUNTS:
        _check(_is_int(v[name]) and v[name] >= 0,
               f"{name} must be an integer >= 0, got {v[name]!r}")
        v[name] = int(v[name])
    _check(v["max_iter"] <= MAX_ITER_LIMIT,
           f"max_iter must be <= {MAX_ITER_LIMIT} (the loss history is allocated up front), "
           f"got {v['max_iter']}")
    _check(v["stop_window"] >= 1, f"stop_window must be >= 1, got {v['stop_window']}")
    _check(v["block"] >= 1, f"block must be >= 1, got {v['block']}")
    _check(v["max_components"] in (1, 2),
           f"max_components must be 1 or 2, got {v['max_components']}")
    for name in _POSITIVE:
        _check(_is_real(v[name]) and math.isfinite(v[name]) and v[name] > 0,
               f"{name} must be a finite number > 0, got {v[name]!r}")
        v[name] = float(v[name])
    for name in _NON_NEGATIVE:
        _check(_is_real(v[name]) and math.isfinite(v[name]) and v[name] >= 0,
               f"{name} must be a finite number >= 0, got {v[name]!r}")
        v[name] = float(v[name])
    _check(isinstance(v["init"], str) and v["init"] in INITS,
           f"unknown init {v['init']!r}; choose one of {INITS}")
    _check(isinstance(v["optimizer"], str) and v["optimizer"] in OPTIMIZERS,
           f"unknown optimizer {v['optimizer']!r}; choose one of {OPTIMIZERS}")
    _check(v["sparsity"] is None or (isinstance(v["sparsity"], str) and v["sparsity"] in SPARSITY),
           f"unknown sparsity {v['sparsity']!r}; choose one of {SPARSITY}")
    mx = v["max_sources"]
    _check(mx is None or (_is_int(mx) and mx >= 1),
           f"max_sources must be None or an integer >= 1, got {mx!r}")
    v["max_sources"] = None if mx is None else int(mx)
    config = FitConfig(
        max_iter=v["max_iter"],
        min_iter=v["min_iter"],
        optimizer=v["optimizer"],
        resize=v["resize"],
        grow=v["grow"],
        block=v["block"],
        stop_window=v["stop_window"],
        constraints=ConstraintConfig(
            monotonic=bool(v["monotonic"]),
            symmetric=any(np.atleast_1d(v["symmetric"])) or v["symmetric_dominated"],
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


def _render_readme(path: str) -> None:
    """Rewrite the options table of a README between its ``<!-- options-table -->``
    markers (``python -m scarlet_jax.options README.md``)."""
    from pathlib import Path

    start, end = "<!-- options-table -->", "<!-- /options-table -->"
    text = Path(path).read_text()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    Path(path).write_text(f"{head}{start}\n{option_table()}\n{end}{tail}")


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1:
        _render_readme(sys.argv[1])
    else:
        print(option_table())
