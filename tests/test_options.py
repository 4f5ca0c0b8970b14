"""Every option of the table walked through every entry point: ``deblend``,
``deblend_batch``, the CLI (its console script) and ``init_components``.

A valid non-default value reaches the typed groups unchanged (and nothing else moves off its
default); an invalid one is a ``BadInputError`` (exit code 2 from the CLI) naming the
option. The entry points' fits are not run: ``run`` is replaced by a spy that keeps the
resolved :class:`~scarlet_jax.options.Options`, and the CLI's ``--dry-run`` prints them.
"""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
from _cli import no_traceback, run_cli

import scarlet_jax as sj
import scarlet_jax.initialization as initialization
from scarlet_jax import cli, pipeline
from scarlet_jax.errors import BadInputError
from scarlet_jax.options import (
    DEFAULTS,
    GROUPS,
    OPTIONS,
    InitOptions,
    check_option,
    group,
    resolve_options,
)

# option: (a valid value other than the default, an invalid value)
EXAMPLES = {
    "max_iter": (7, -1),
    "e_rel": (0.02, 0),
    "min_iter": (2, -2),
    "stop_window": (3, 0),
    "optimizer": ("fista", "sgd"),
    "init": ("wavelet", "chi3"),
    "monotonic": (False, "yes"),
    "symmetric": ((True, False), [0.5]),
    "sparsity": ("l1", "l2"),
    "sparsity_thresh": (2.0, -1.0),
    "fit_radius": (2, -1),
    "bg_thresh": (0.5, -0.1),
    "initial_bg_thresh": (1.0, math.nan),
    "init_noise_relative": (False, 2),
    "init_subtract": (False, "no"),
    "symmetric_dominated": (False, None),
    "symmetric_low_peak": (False, "on"),
    "init_own_snr": (False, 3),
    "init_share": (True, "on"),
    "init_share_own": (0.7, 1.5),
    "init_bump_seed": (0.5, -0.5),
    "init_bump_colour": (0.01, -0.1),
    "min_snr": (20.0, 0),
    "max_components": (1, 3),
    "fit_spectra": (False, "x"),
    "weighted_spectra": (True, 2),
    "final_spectra": (False, "y"),
    "reattribute_drained": (0.5, 1.5),
    "resize": (0, -3),
    "grow": (2, 1.5),
    "grow_margin": (3, -1),
    "morph_step": (0.05, 0),
    "spectrum_step_noise": (0.2, -1),
    "spectrum_step_rel": (0.05, -1),
    "divergence_factor": (100.0, 0),
    "max_sources": (None, 0),
    "block": (4, 0),
}
NAMES = sorted(OPTIONS)
# explicit CLI flags (the others go through --option NAME=VALUE)
FLAGS = {"max_iter": ["--max-iter", "7"], "min_iter": ["--min-iter", "2"],
         "e_rel": ["--e-rel", "0.02"], "bg_thresh": ["--bg-thresh", "0.5"],
         "min_snr": ["--min-snr", "20"], "max_components": ["--max-components", "1"],
         "max_sources": ["--no-max-sources"], "optimizer": ["--optimizer", "fista"],
         "init": ["--init", "wavelet"], "sparsity": ["--sparsity", "l1"],
         "sparsity_thresh": ["--sparsity-thresh", "2"], "monotonic": ["--no-monotonic"]}


def test_every_option_has_examples_and_a_group():
    assert sorted(EXAMPLES) == NAMES
    for name, (good, bad) in EXAMPLES.items():
        o = OPTIONS[name]
        assert o.groups and set(o.groups) <= set(GROUPS) and o.doc
        assert check_option(name, o.default) == o.default  # the default passes its own check
        assert check_option(name, good) != o.default, name
        with pytest.raises(BadInputError, match=name):
            check_option(name, bad)
    assert DEFAULTS == {n: o.default for n, o in OPTIONS.items()}


def _typed(opts, name):
    """The value of option ``name`` in each typed group that reads it."""
    found = {}
    for g in OPTIONS[name].groups:
        if g == "init":
            found[g] = getattr(opts.init, name)
        elif g == "run":
            found[g] = getattr(opts.run, name)
        elif g == "fit":
            found[g] = getattr(opts.config, name)
        elif g == "constraints":
            found[g] = getattr(opts.config.constraints, name)
        elif g == "params":
            where = opts.params.constraints if hasattr(opts.params.constraints, name) \
                else opts.params
            value = getattr(where, name)
            assert value.dtype == np.float32
            found[g] = float(value)
    return found


def _expected(name, value):
    return float(np.float32(value)) if "params" in OPTIONS[name].groups else value


def _assert_carries(opts, name, value):
    """``opts`` holds ``value`` for ``name`` in every group, and the defaults elsewhere."""
    for g, got in _typed(opts, name).items():
        assert got == _expected(name, value) and type(got) is type(_expected(name, value)), \
            (name, g, got)
    assert opts.values[name] == value
    for other in NAMES:
        if other != name:
            assert opts.values[other] == DEFAULTS[other], other
            for g, got in _typed(opts, other).items():
                assert got == _expected(other, DEFAULTS[other]), (other, g)


@pytest.fixture(scope="module")
def blend():
    b = sj.datasets.synthetic_blend(1, shape=(24, 24), n_bands=2, n_sources=2, psf_size=11)
    return b.observation, b.centers


@pytest.fixture
def spy(monkeypatch):
    """Replace the pipeline's ``run`` behind deblend and deblend_batch: keep the options."""
    seen = []

    def fake_run(items, opts, **kwargs):
        seen.append(opts)
        return [None] * len(items)

    # the modules (sj.deblend and sj.deblend_batch are the functions)
    for module in ("scarlet_jax.deblend", "scarlet_jax.batch"):
        monkeypatch.setattr(importlib.import_module(module), "run", fake_run)
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_a_valid_value_reaches_the_typed_groups(name, blend, spy, monkeypatch):
    value = EXAMPLES[name][0]
    obs, centers = blend
    sj.deblend(obs, centers, **{name: value})
    sj.deblend_batch([(obs, centers)], **{name: value})
    assert len(spy) == 2
    for opts in spy:
        _assert_carries(opts, name, value)
    # the pipeline hands the init group to init_components unchanged
    handed = []
    def fake_init(obs, centers, *, options):
        handed.append(options)
        return []

    monkeypatch.setattr(initialization, "init_components", fake_init)
    monkeypatch.setattr(pipeline, "init_components", fake_init, raising=False)
    pipeline.prepare_blend(obs, centers, spy[0])
    assert handed == [spy[0].init]


@pytest.mark.parametrize("name", group("init"))
def test_init_components_takes_the_same_options(name, blend, monkeypatch):
    """A keyword of init_components builds the same InitOptions as deblend's option, and
    passing it by keyword or inside ``options`` initialises the same components."""
    value = EXAMPLES[name][0]
    obs, centers = blend
    made = []
    real = InitOptions.make.__func__
    monkeypatch.setattr(InitOptions, "make",
                        classmethod(lambda cls, **kw: made.append(real(cls, **kw)) or made[-1]))
    by_keyword = initialization.init_components(obs, centers, **{name: value})
    assert made == [resolve_options(**{name: value}).init]
    by_group = initialization.init_components(obs, centers, options=made[0])
    assert [c.source for c in by_keyword] == [c.source for c in by_group]
    for a, b in zip(by_keyword, by_group, strict=True):
        np.testing.assert_array_equal(a.morph, b.morph)
        np.testing.assert_array_equal(a.spectrum, b.spectrum)


def test_init_components_defaults_are_the_tables(blend, monkeypatch):
    obs, centers = blend
    made = []
    real = InitOptions.make.__func__
    monkeypatch.setattr(InitOptions, "make",
                        classmethod(lambda cls, **kw: made.append(real(cls, **kw)) or made[-1]))
    initialization.init_components(obs, centers)
    assert made == [resolve_options().init]
    assert made[0].weighted_spectra is DEFAULTS["weighted_spectra"]


@pytest.mark.parametrize("name", NAMES)
def test_an_invalid_value_is_named_by_every_entry_point(name, blend, spy, capsys):
    bad = EXAMPLES[name][1]
    obs, centers = blend
    with pytest.raises(BadInputError, match=name):
        sj.deblend(obs, centers, **{name: bad})
    with pytest.raises(BadInputError, match=name):
        sj.deblend_batch([(obs, centers)], **{name: bad})
    with pytest.raises(BadInputError, match=name):  # not an init option, or a bad value
        initialization.init_components(obs, centers, **{name: bad})
    assert spy == []
    assert cli.main(["deblend", "in.npz", "--dry-run", "--option", f"{name}={bad!r}"]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_the_cli_passes_every_option(tmp_path, capsys):
    """A dry run of the console script with every option through --option, and one in
    process with the explicit flags (and --option for the rest): what the fit would get,
    as JSON. (Bad values: the test above; the console script's exit 2: test_cli.)"""
    every = [a for n in NAMES for a in ("--option", f"{n}={EXAMPLES[n][0]!r}")]
    by_flag = [a for n in NAMES for a in (FLAGS[n] if n in FLAGS else
                                          ("--option", f"{n}={EXAMPLES[n][0]!r}"))]
    expected = {n: EXAMPLES[n][0] for n in NAMES}
    expected["symmetric"] = list(expected["symmetric"])  # JSON
    proc = run_cli("deblend", "in.npz", *every, "--dry-run", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert json.loads(proc.stdout) == expected
    assert {p.name for p in tmp_path.iterdir()} <= {".jax_cache"}  # a dry run writes nothing
    assert cli.main(["batch", "folder", *by_flag, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == expected
