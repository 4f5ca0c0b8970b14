"""Options of a deblend: one table of definitions, and the typed groups built from it.

Every option is defined once in :data:`OPTIONS` (name, default, check, one-line doc, and
the groups that read it). :func:`resolve_options` validates a set of options once, from the
table, and splits them into typed, frozen groups:

* :class:`InitOptions` (group ``"init"``): read by
  :func:`~scarlet_jax.initialization.init_components`;
* :class:`RunOptions` (group ``"run"``): read by the host pipeline (detection limit,
  per-source symmetry flags, slot margin);
* :class:`~scarlet_jax.fit.FitConfig` (group ``"fit"``) with its
  :class:`~scarlet_jax.constraints.ConstraintConfig` (group ``"constraints"``): the static
  settings of the compiled fit;
* :class:`~scarlet_jax.fit.FitParams` (group ``"params"``): its traced numbers.

``DEFAULTS``, ``OPTION_DOCS``, the README's options table and the CLI's help are derived from
the table.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .constraints import SPARSITY, ConstraintConfig
from .errors import BadInputError
from .fit import OPTIMIZERS, FitConfig, FitParams
from .packing import GROW_MARGIN

__all__ = ["DEFAULTS", "GROUPS", "INITS", "LSST_PIPELINE", "MAX_ITER_LIMIT", "OPTIONS",
           "OPTION_DOCS", "InitOptions", "Option", "Options", "RunOptions", "check_option",
           "option_table", "resolve_options"]

#: Initialisations: scarlet lite's chi^2 detection image, or a starlet-denoised one.
INITS = ("chi2", "wavelet")

#: The largest ``max_iter`` accepted: the loss history holds ``max_iter`` float32 values
#: per blend, so a typo like ``max_iter=10**9`` would ask for gigabytes.
MAX_ITER_LIMIT = 100_000

# ------------------------------------------------------------------------------- checks
# Each check takes a value and returns it normalised (Python int/float/bool), or returns a
# message (str, without the option's name) saying what is expected.


class _Bad(str):
    """A check's complaint: what the value should be."""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_)) or (_is_int(value) and value in (0, 1))


def _boolean(value):
    return bool(value) if _is_bool(value) else _Bad(f"must be True or False, got {value!r}")


def _count(low: int = 0, high: int | None = None, why: str = ""):
    def check(value):
        if not (_is_int(value) and value >= 0):
            return _Bad(f"must be an integer >= 0, got {value!r}")
        if value < low:
            return _Bad(f"must be >= {low}, got {value!r}")
        if high is not None and value > high:
            return _Bad(f"must be <= {high}{why}, got {value!r}")
        return int(value)

    return check


def _real(strict: bool):
    op = ">" if strict else ">="

    def check(value):
        ok = _is_real(value) and math.isfinite(value) and (value > 0 if strict else value >= 0)
        return float(value) if ok else _Bad(f"must be a finite number {op} 0, got {value!r}")

    return check


def _at_most_one(value):
    return value if value <= 1 else _Bad(f"must be at most 1, got {value!r}")


def _one_of(choices: tuple, what: str | None = None):
    def check(value):
        hashable = value is None or isinstance(value, (str, numbers.Number))
        if hashable and not isinstance(value, (bool, np.bool_)) and value in choices:
            return choices[choices.index(value)]  # the table's own (Python) value
        if what is not None:
            return _Bad(f"unknown {what} {value!r}; choose one of {choices}")
        listed = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}"
        return _Bad(f"must be {listed}, got {value!r}")

    return check


def _all(*checks):
    """Each check in turn on the value the previous one returned."""
    def check(value):
        for one in checks:
            value = one(value)
            if isinstance(value, _Bad):
                break
        return value

    return check


def _max_sources(value):
    if value is None:
        return None
    if _is_int(value) and value >= 1:
        return int(value)
    return _Bad(f"must be None or an integer >= 1, got {value!r}")


def _symmetric(value):
    """One bool for every component, or a sequence of one bool per source."""
    if _is_bool(value):
        return bool(value)
    bad = _Bad(f"must be True or False, or a sequence of one True/False per source, "
               f"got {value!r}")
    try:
        ndim = np.ndim(value)
    except ValueError:  # ragged
        return bad
    if isinstance(value, (str, bytes, dict)) or ndim != 1:
        return bad
    flags = list(value)
    return tuple(bool(f) for f in flags) if all(_is_bool(f) for f in flags) else bad


# -------------------------------------------------------------------------------- table


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its default, its check, one line of doc, and the groups that read it."""

    name: str
    default: Any
    check: Callable[[Any], Any]
    doc: str
    groups: tuple[str, ...]

    def validate(self, value):
        """``value`` normalised, or :class:`BadInputError` naming the option."""
        out = self.check(value)
        if isinstance(out, _Bad):
            # messages of _one_of with a ``what`` already start with "unknown <name>"
            raise BadInputError(out if out.startswith("unknown ") else f"{self.name} {out}")
        return out


#: The groups of options, in the order of the pipeline.
GROUPS = ("run", "init", "constraints", "fit", "params")

_O = Option
#: Every option, once (scarlet lite's library defaults, with the LSST pipeline's fit loop).
OPTIONS: dict[str, Option] = {o.name: o for o in (
    _O("max_iter", 300, _count(high=MAX_ITER_LIMIT, why=" (the loss history is allocated "
                               "up front)"),
       "most iterations of the fit", ("fit",)),
    _O("e_rel", 1e-3, _real(strict=True),
       "stop when the loss changes by less than this fraction of itself per iteration",
       ("params",)),
    _O("min_iter", 5, _count(), "fewest iterations before the convergence test", ("fit",)),
    _O("stop_window", 10, _count(low=1),
       "stop when the loss changed by less than e_rel per iteration on average over "
       "this many iterations (1: scarlet lite's one-step test)", ("fit",)),
    _O("optimizer", "adaprox", _one_of(OPTIMIZERS, "optimizer"),
       "'adaprox' (proximal AMSGrad, scarlet lite's) or 'fista'", ("fit",)),
    _O("init", "chi2", _one_of(INITS, "init"),
       "initial morphologies from the chi^2 detection image ('chi2', scarlet lite's) "
       "or a starlet-denoised one ('wavelet')", ("init",)),
    _O("monotonic", True, _boolean,
       "make morphologies decrease monotonically from the peak (initial ones too)",
       ("init", "constraints")),
    _O("symmetric", False, _symmetric,
       "make morphologies symmetric about the peak: one bool, or one per center", ("run",)),
    _O("sparsity", None, _one_of(SPARSITY, "sparsity"),
       "None, 'l0' or 'l1' sparsity of the morphologies", ("constraints",)),
    _O("sparsity_thresh", 1.0, _real(strict=False),
       "the L0/L1 threshold, in units of the noise rms", ("params",)),
    _O("fit_radius", 1, _count(), "half-size (pixels) of the window in which the peak is "
       "re-found", ("constraints",)),
    _O("bg_thresh", 0.25, _real(strict=False),
       "morphology pixels below this many noise rms are set to 0 during the fit",
       ("params",)),
    _O("initial_bg_thresh", 0.5, _real(strict=False),
       "the same threshold for the initial morphologies", ("init",)),
    _O("init_noise_relative", True, _boolean,
       "initial morphology cut in units of the detection image's noise "
       "(False: scarlet lite's mean(noise_rms) * initial_bg_thresh)", ("init",)),
    _O("init_subtract", True, _boolean,
       "initialise sources from the brightest down, each on the detection image "
       "minus the brighter ones", ("init",)),
    _O("init_share", False, _boolean,
       "with init_subtract, start each source from its share of the detection image, "
       "split in proportion to the sources' isolated initial morphologies times their "
       "fluxes (False: subtract the brighter sources' morphologies, brightest first)",
       ("init",)),
    _O("init_share_own", 0.5, _all(_real(strict=False), _at_most_one),
       "with init_subtract, split the detection image in proportion to the isolated "
       "initial morphologies among the sources whose own part of their centre (beside "
       "brighter ones' isolated morphologies) is at least this; the others are initialised "
       "after them on the rest, as init_subtract does (0: off)", ("init",)),
    _O("init_bump_seed", 0.25, _all(_real(strict=False), _at_most_one),
       "with init_subtract, a dominated source that the split leaves under half of its "
       "local bump (detection image minus the median of a ring around its centre) starts "
       "from that bump instead, and the joint spectrum refit keeps at least this fraction "
       "of its bump spectrum (0: off)", ("init",)),
    _O("init_bump_colour", 0.005, _all(_real(strict=False), _at_most_one),
       "with init_bump_seed, seed only a bump whose colour differs from the ring's (the "
       "neighbours' wing there): the noise-weighted sin^2 of the angle between the bump's "
       "and the ring median's spectra must exceed this (a wing's curvature has the wing's "
       "colour; 0: no test)", ("init",)),
    _O("symmetric_dominated", True, _boolean,
       "make a source symmetric when its centre is dominated by brighter "
       "neighbours' light", ("init",)),
    _O("symmetric_low_peak", True, _boolean,
       "with symmetric_dominated, also make a source symmetric when its centre is under "
       "a tenth of an overlapping neighbour's (in the detection image) and brighter "
       "sources give at least a tenth of the light there", ("init",)),
    _O("init_own_snr", True, _boolean,
       "with init_subtract, count only a source's own share of the light at its centre "
       "toward min_snr (a faint source on a bright wing gets one component)", ("init",)),
    _O("min_snr", 50.0, _real(strict=True),
       "signal-to-noise needed per extra component at initialisation", ("init",)),
    _O("max_components", 2, _all(_count(), _one_of((0, 1, 2))),
       "components per source (1 or 2; 0: every source a point source)", ("init",)),
    _O("fit_spectra", True, _boolean, "refit all spectra jointly after initialisation",
       ("init",)),
    _O("weighted_spectra", False, _boolean,
       "weight those spectrum fits by the inverse variance (False: every valid pixel "
       "weighs 1, as scarlet lite)", ("init",)),
    _O("final_spectra", True, _boolean,
       "after the fit, set every spectrum to its weighted non-negative least-squares "
       "optimum for the fitted morphologies", ("run",)),
    _O("reattribute_drained", 0.9, _all(_real(strict=False), _at_most_one),
       "after the fit, a source with a bump of its own colour in the data, whose flux is "
       "under half the bump's and whose own components hold under this part of the model's "
       "bump at its centre, takes back the neighbours' morphology above a surface fitted "
       "around it (up to the bump's flux); the spectra are then solved again, kept if chi^2 "
       "rises by under 1e-3 (0: off)", ("run",)),
    _O("resize", 3, _count(), "resize the boxes every this many iterations (0: never)",
       ("fit",)),
    _O("grow", 5, _count(), "pixels added around the significant pixels when a box is "
       "resized", ("fit",)),
    _O("grow_margin", GROW_MARGIN, _count(),
       "pixels of room in the slot box around each initial box", ("run",)),
    _O("morph_step", 0.01, _real(strict=True),
       "morphology step size (relative to the peak value)", ("params",)),
    _O("spectrum_step_noise", 0.1, _real(strict=False),
       "spectrum step of at least this x the band's noise rms", ("params",)),
    _O("spectrum_step_rel", 0.01, _real(strict=False),
       "spectrum step of at least this x the mean of the spectrum", ("params",)),
    _O("divergence_factor", 1e3, _real(strict=True),
       "a loss above this x (initial loss + pixels) marks the fit diverged", ("params",)),
    _O("max_sources", 1000, _max_sources,
       "most sources per blend (None: no limit); more is an error", ("run",)),
    _O("block", 8, _count(low=1), "iterations per lax.scan block between convergence checks",
       ("fit",)),
)}
del _O

#: The default of every option (derived from :data:`OPTIONS`).
DEFAULTS: dict[str, Any] = {name: o.default for name, o in OPTIONS.items()}

#: What each option does, one line each (derived from :data:`OPTIONS`; the README's options
#: table and the CLI's ``--help`` are rendered from it).
OPTION_DOCS: dict[str, str] = {name: o.doc for name, o in OPTIONS.items()}

#: The LSST pipeline recipe used for scarlet lite's reference fit of hsc_cosmos_35.
LSST_PIPELINE: dict[str, Any] = dict(bg_thresh=1.0, initial_bg_thresh=1.0, min_snr=50.0,
                                     stop_window=1, init_noise_relative=False,
                                     init_subtract=False, symmetric_dominated=False,
                                     init_own_snr=False, final_spectra=False,
                                     init_share=False, init_share_own=0.0,
                                     init_bump_seed=0.0, init_bump_colour=0.0,
                                     symmetric_low_peak=False, reattribute_drained=0.0)


def group(name: str) -> tuple[str, ...]:
    """The options of group ``name`` (one of :data:`GROUPS`), in table order."""
    return tuple(o.name for o in OPTIONS.values() if name in o.groups)


def check_option(name: str, value):
    """``value`` of option ``name`` checked against the table and normalised.

    Raises:
      BadInputError: an unknown option, or a bad value (the option is named).
    """
    if name not in OPTIONS:
        raise BadInputError(f"unknown option(s) {[name]}; known: {sorted(OPTIONS)}")
    return OPTIONS[name].validate(value)


def _group_class(cls_name: str, group_name: str, doc: str):
    """A frozen dataclass with one field per option of a group, defaults from the table."""
    names = group(group_name)
    fields = [(n, Any, dataclasses.field(default=OPTIONS[n].default)) for n in names]

    def make(klass, **options):
        """Checked group from keyword options (defaults for the others)."""
        unknown = sorted(set(options) - set(names))
        if unknown:
            where = [f"{n} (a {'/'.join(OPTIONS[n].groups)} option)" if n in OPTIONS else n
                     for n in unknown]
            raise BadInputError(f"not {group_name} option(s): {', '.join(where)}; "
                                f"known: {list(names)}")
        return klass(**options)

    def post_init(self):
        for n in names:  # the table's checks; the fields hold the normalised values
            object.__setattr__(self, n, OPTIONS[n].validate(getattr(self, n)))

    cls = dataclasses.make_dataclass(
        cls_name, fields, frozen=True,
        namespace={"make": classmethod(make), "__post_init__": post_init})
    cls.__module__ = __name__
    cls.__doc__ = (doc + "\n\nFields (defaults, checks and meaning in :data:`OPTIONS`): "
                   + ", ".join(f"``{n}``" for n in names) + ".")
    return cls


InitOptions = _group_class("InitOptions", "init",
                           "Options of :func:`~scarlet_jax.initialization.init_components`.")
RunOptions = _group_class("RunOptions", "run", "Options read by the host pipeline.")


def option_table() -> str:
    """The options as a Markdown table (name, default, meaning), as the README shows it."""
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for name, o in OPTIONS.items():
        lines.append(f"| `{name}` | `{o.default!r}` | {o.doc} |")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Options:
    """Validated options: every value, and the typed groups built from them.

    Attributes:
      values: every option, checked and normalised (a plain dict, as results record it).
      init: :class:`InitOptions`.
      run: :class:`RunOptions`.
      config: the static :class:`~scarlet_jax.fit.FitConfig`.
      params: the traced :class:`~scarlet_jax.fit.FitParams`.
    """

    values: dict
    init: Any
    run: Any
    config: FitConfig
    params: FitParams

    def __getitem__(self, key):
        return self.values[key]


def resolve_options(**options) -> Options:
    """Merge ``options`` into :data:`DEFAULTS`, check each once against :data:`OPTIONS`,
    and build the typed groups.

    Integers and reals may be Python or numpy scalars (they are converted to ``int`` and
    ``float``); booleans are not accepted as numbers.

    Raises:
      BadInputError: an unknown option, a value of the wrong type or out of range, or an
        unknown optimizer or sparsity name (the option is named in the message).
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BadInputError(f"unknown option(s) {unknown}; known: {sorted(OPTIONS)}")
    v = {name: o.validate(options[name]) if name in options else o.default
         for name, o in OPTIONS.items()}

    def pick(group_name):
        return {n: v[n] for n in group(group_name)}

    constraints = ConstraintConfig(
        **pick("constraints"),
        # the symmetry operator is compiled in when any source may need it
        symmetric=bool(np.any(v["symmetric"])) or v["symmetric_dominated"],
    )
    return Options(values=v, init=InitOptions(**pick("init")), run=RunOptions(**pick("run")),
                   config=FitConfig(**pick("fit"), constraints=constraints),
                   params=FitParams.make(**pick("params")))


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
