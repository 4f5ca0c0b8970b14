"""What bad input gets, at every boundary (the README table "What bad input gets").

Every case is either an error whose message names the problem (checked with ``match=``) or
a documented repair with an :class:`~scarlet_jax.errors.InputWarning`. The fit's numerical
guards (a step that goes non-finite is reverted and flagged) are checked at the end.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import scarlet_jax as sj
from scarlet_jax.batch import deblend_batch
from scarlet_jax.centers import round_centers, validate_centers
from scarlet_jax.detect import detect
from scarlet_jax.errors import BadFileError, BadInputError, InputWarning
from scarlet_jax.observation import make_observation
from scarlet_jax.options import MAX_ITER_LIMIT, resolve_options

B, H, W = 3, 20, 22
MAX_ITER = 10  # one value for every fit here: max_iter is static, each value compiles


def _psfs(size=5, sigma=1.0, n=B):
    r = np.arange(size) - size // 2
    psf = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    return np.repeat((psf / psf.sum())[None], n, axis=0)


def _inputs():
    rng = np.random.default_rng(7)
    return dict(
        images=rng.normal(size=(B, H, W)),
        variance=np.ones((B, H, W)),
        psfs=_psfs(),
    )


def _with(**changes):
    """Keyword arguments of make_observation: the good inputs with some replaced; a value
    that is a function is applied to the good array (``lambda a: ...``)."""
    kwargs = _inputs()
    for key, value in changes.items():
        kwargs[key] = value(kwargs.get(key)) if callable(value) else value
    return kwargs


def _set(index, value):
    """A function returning a copy of an array with ``array[index] = value``."""

    def apply(a):
        a = np.array(a, dtype=np.result_type(np.asarray(a), np.asarray(value)))
        a[index] = value
        return a

    return apply


def _build(kwargs):
    kwargs = dict(kwargs)
    return make_observation(kwargs.pop("images"), kwargs.pop("variance"), kwargs.pop("psfs"),
                            **kwargs)


# ----------------------------------------------------------------------- Observation errors

OBSERVATION_ERRORS = [
    # shapes and band counts
    ("variance shape", _with(variance=np.ones((B, H, W + 1))),
     r"variance \(3, 20, 23\) does not match images \(3, 20, 22\)"),
    ("variance bands", _with(variance=np.ones((2, H, W))),
     r"variance \(2, 20, 22\) does not match images"),
    ("psf band count", _with(psfs=_psfs(n=2)), r"psfs \(2, 5, 5\): 2 bands, images have 3"),
    ("psf rank", _with(psfs=np.ones(5)), r"psfs: expected 2-d or 3-d array, got shape \(5,\)"),
    ("image rank 1", _with(images=np.ones(W)), r"images: expected 2-d or 3-d array"),
    ("image rank 4", _with(images=np.ones((1, B, H, W))), r"images: expected 2-d or 3-d"),
    ("mask shape", _with(mask=np.zeros((H, W + 1), bool)), r"mask \(20, 23\) does not match"),
    ("band names count", _with(bands=["g", "r"]), "bands: 2 names for 3 image bands"),
    ("band names repeated", _with(bands=["g", "r", "g"]), "band name 'g' appears more than once"),
    ("zero bands", _with(images=np.ones((0, H, W)), variance=np.ones((0, H, W)),
                         psfs=np.ones((0, 5, 5))), r"images \(0, 20, 22\): no bands"),
    ("empty image", _with(images=np.ones((B, 0, W)), variance=np.ones((B, 0, W))),
     "empty image"),
    ("image smaller than the PSF", _with(psfs=_psfs(size=41)),
     r"smaller than half the PSF \(41, 41\) \(a PSF may be at most \(39, 43\)\)"),
    # dtypes
    ("complex images", _with(images=lambda a: a + 1j), "images .*complex input"),
    ("complex variance", _with(variance=lambda a: a.astype(complex)), "variance .*complex"),
    ("complex psfs", _with(psfs=lambda a: a.astype(np.complex64)), "psfs .*complex"),
    ("string images", _with(images=np.full((B, H, W), "1.0")), "images: expected a real numeric"),
    ("object images", _with(images=None), "images: expected a real numeric array, got dtype obj"),
    ("ragged images", _with(images=[[1.0, 2.0], [3.0]]), "images: cannot be read as an array"),
    ("string mask", _with(mask=np.full((H, W), "x")), "mask: expected a boolean array"),
    # PSFs
    ("even psf height", _with(psfs=np.ones((B, 4, 5)) / 20), r"sizes must be odd.*\(4, 5\)"),
    ("even psf width", _with(psfs=np.ones((B, 5, 6)) / 30), r"sizes must be odd.*\(5, 6\)"),
    ("negative psf sum", _with(psfs=_set((1,), -_psfs()[1])),
     r"psfs \(3, 5, 5\): band=1 sums to -1; a PSF must have a sum > 0"),
    ("zero psf", _with(psfs=_set((2,), 0.0)), "band=2 sums to 0"),
    ("NaN psf", _with(psfs=_set((1, 2, 3), np.nan)),
     r"psfs \(3, 5, 5\): 1 NaN/inf value\(s\), first at band=1, y=2, x=3"),
    ("inf psf", _with(psfs=_set((0, 0, 0), np.inf)), "NaN/inf value.*band=0, y=0, x=0"),
    ("even model psf", _with(model_psf=np.ones((4, 4))), r"model_psf \(4, 4\): sizes must be odd"),
    ("NaN model psf", _with(model_psf=_set((1, 1), np.nan)(np.ones((3, 3)))),
     "model_psf .*NaN/inf.*y=1, x=1"),
    ("zero-sum model psf", _with(model_psf=np.zeros((3, 3))), "model_psf .*sums to 0"),
    # pixels and variance
    ("all pixels masked", _with(mask=np.ones((H, W), bool)),
     r"every pixel is masked or invalid \(1320 masked"),
    ("all pixels NaN", _with(images=np.full((B, H, W), np.nan)),
     "every pixel is masked or invalid .*1320 NaN/inf"),
    ("all variance bad", _with(variance=np.zeros((B, H, W))),
     "every pixel is masked or invalid .*1320 bad variance"),
    ("masked + invalid everywhere",
     _with(mask=np.arange(H * W).reshape(H, W) % 2 == 0,
           variance=lambda v: np.where(np.arange(W) % 2 == 1, -1.0, v)),
     "every pixel is masked or invalid"),
    ("loss overflows float32", _with(images=lambda a: a * 1e16),
     r"would overflow the float32 loss.*rescale"),
    # noise_rms
    ("noise_rms count", _with(noise_rms=[1.0, 1.0]), r"noise_rms \(2,\): need 3 finite"),
    ("noise_rms NaN", _with(noise_rms=[1.0, np.nan, 1.0]), "noise_rms .*finite values > 0"),
    ("noise_rms zero", _with(noise_rms=[1.0, 0.0, 1.0]), "noise_rms .*finite values > 0"),
    ("noise_rms string", _with(noise_rms="1"), "noise_rms: expected a real numeric"),
]


@pytest.mark.parametrize(("kwargs", "match"), [pytest.param(k, m, id=i)
                                                for i, k, m in OBSERVATION_ERRORS])
def test_make_observation_rejects(kwargs, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        with pytest.raises(BadInputError, match=match):
            _build(kwargs)


def test_bad_input_errors_are_value_errors():
    assert issubclass(BadInputError, ValueError) and issubclass(BadFileError, ValueError)
    assert issubclass(InputWarning, UserWarning)


# ----------------------------------------------------------------------- Observation repairs


def _weight_zero_at(*index):
    def check(obs):
        assert obs.weights[index] == 0
        assert np.isfinite(obs.images).all() and np.isfinite(obs.weights).all()
        assert (obs.weights > 0).sum() == B * H * W - 1

    return check


def _band_weight_zero(band):
    def check(obs):
        assert (obs.weights[band] == 0).all() and (obs.weights[:band] > 0).all()
        assert np.isfinite(obs.noise_rms).all() and (obs.noise_rms > 0).all()

    return check


def _normalised(obs):
    np.testing.assert_allclose(obs.psfs.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(obs.psfs[1], _psfs()[1], rtol=1e-5)


def _float32_copy_of(expected):
    def check(obs):
        assert obs.images.dtype == np.float32 and obs.weights.dtype == np.float32
        np.testing.assert_array_equal(obs.images, np.asarray(expected, np.float32))

    return check


INT_IMAGES = np.arange(B * H * W, dtype=np.int64).reshape(B, H, W) % 7 - 3
OBSERVATION_REPAIRS = [
    # (id, kwargs, warning match or None, check)
    ("integer images cast", _with(images=INT_IMAGES), None, _float32_copy_of(INT_IMAGES)),
    ("uint8 images cast", _with(images=INT_IMAGES.astype(np.uint8)), None,
     _float32_copy_of(INT_IMAGES.astype(np.uint8))),
    ("bool images cast", _with(images=INT_IMAGES > 0), None, _float32_copy_of(INT_IMAGES > 0)),
    ("integer variance and psfs", _with(variance=np.ones((B, H, W), np.int32),
                                        psfs=np.pad(np.ones((B, 1, 1), np.int16),
                                                    ((0, 0), (2, 2), (2, 2)))), None,
     lambda obs: np.testing.assert_array_equal(obs.weights, 1.0)),
    ("NaN pixel", _with(images=_set((1, 4, 5), np.nan)),
     r"images \(3, 20, 22\): 1 NaN/inf pixel\(s\), first at band=1, y=4, x=5; given weight 0",
     _weight_zero_at(1, 4, 5)),
    ("inf pixel", _with(images=_set((2, 0, 21), -np.inf)), "NaN/inf pixel.*band=2, y=0, x=21",
     _weight_zero_at(2, 0, 21)),
    ("pixel beyond float32", _with(images=_set((0, 3, 3), 1e40)), "NaN/inf pixel.*band=0, y=3",
     _weight_zero_at(0, 3, 3)),
    ("NaN variance", _with(variance=_set((0, 1, 2), np.nan)),
     r"variance \(3, 20, 22\): 1 bad pixel\(s\) \(1 NaN/inf\), first at band=0, y=1, x=2",
     _weight_zero_at(0, 1, 2)),
    ("inf variance", _with(variance=_set((0, 1, 2), np.inf)), r"\(1 NaN/inf\).*band=0, y=1",
     _weight_zero_at(0, 1, 2)),
    ("zero variance", _with(variance=_set((1, 9, 9), 0.0)), r"\(1 zero\), first at band=1, y=9",
     _weight_zero_at(1, 9, 9)),
    ("negative variance", _with(variance=_set((2, 19, 0), -0.1)),
     r"\(1 negative\), first at band=2, y=19, x=0 \(-0.1\)", _weight_zero_at(2, 19, 0)),
    ("variance too small for float32 weights", _with(variance=_set((1, 1, 1), 1e-45)),
     r"\(1 beyond float32\)", _weight_zero_at(1, 1, 1)),
    ("band without valid pixel (variance)", _with(variance=_set((2,), -1.0)),
     r"band\(s\) \[2\] \(\['2'\]\) have no valid pixel; they get weight 0", _band_weight_zero(2)),
    ("band without valid pixel (NaN)", _with(images=_set((1,), np.nan), bands=["g", "r", "i"]),
     r"band\(s\) \[1\] \(\['r'\]\) have no valid pixel", _band_weight_zero(1)),
    ("band without valid pixel (mask)",
     _with(mask=np.stack([np.zeros((H, W)), np.zeros((H, W)), np.ones((H, W))]) > 0),
     r"band\(s\) \[2\]", _band_weight_zero(2)),
    ("psf not normalised", _with(psfs=lambda p: p * [[[1.0]], [[2.0]], [[1.0]]]),
     r"psfs: 1 PSF\(s\) not normalised \(band=1 sums to 2\); normalised to sum 1", _normalised),
    ("model psf not normalised", _with(model_psf=np.ones((3, 3))),
     r"model_psf: 1 PSF\(s\) not normalised \(sums to 9\)",
     lambda obs: np.testing.assert_allclose(obs.model_psf, 1 / 9, rtol=1e-6)),
    ("psf larger than the image", _with(psfs=_psfs(size=39, sigma=2.0)), None,
     lambda obs: np.testing.assert_allclose(obs.psfs.sum(axis=(1, 2)), 1, rtol=1e-6)),
]


@pytest.mark.parametrize(("kwargs", "match", "check"),
                         [pytest.param(k, m, c, id=i) for i, k, m, c in OBSERVATION_REPAIRS])
def test_make_observation_repairs(kwargs, match, check):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obs = _build(kwargs)
    messages = [str(w.message) for w in caught]
    if match is None:
        assert messages == []
    else:
        assert all(issubclass(w.category, InputWarning) for w in caught), messages
        assert any(__import__("re").search(match, m) for m in messages), messages
    check(obs)


# ----------------------------------------------------------------------------- centers

CENTER_ERRORS = [
    ("NaN", [[5.0, 5.0], [np.nan, 3.0]],
     r"centers \(2, 2\): 1 NaN/inf center\(s\), first at source=1 \(y, x\) = \(nan, 3.0\)"),
    ("inf", [[np.inf, 1.0]], "NaN/inf center.*source=0"),
    ("negative y", [[5.0, 5.0], [-0.6, 3.0]],
     r"1 center\(s\) outside the image of shape \(20, 22\), first at source=1 .*\(-0.6, 3.0\)"),
    ("beyond H", [[19.6, 3.0]], r"outside the image.*source=0 \(y, x\) = \(19.6, 3.0\)"),
    ("beyond W", [[3.0, 22.0]], r"outside the image.*\(3.0, 22.0\)"),
    ("far away", [[1e20, 3.0]], "outside the image"),
    ("none", np.zeros((0, 2)), r"centers \(0, 2\): no sources \(pass centers=None"),
    ("wrong shape", np.zeros((3, 3)), r"expected shape \(S, 2\) \(y, x\), got \(3, 3\)"),
    ("strings", [["1", "2"]], "expected a real .* array, got dtype <U1"),
    ("complex", [[1 + 1j, 2.0]], "expected a real .* got dtype complex128"),
    ("ragged", [[1.0, 2.0], [3.0]], "cannot be read as an array"),
]


@pytest.mark.parametrize(("centers", "match"), [pytest.param(c, m, id=i)
                                                 for i, c, m in CENTER_ERRORS])
def test_validate_centers_rejects(centers, match):
    with pytest.raises(BadInputError, match=match):
        validate_centers(centers, (H, W))


@pytest.mark.parametrize(("centers", "match"), [pytest.param(c, m, id=i)
                                                 for i, c, m in CENTER_ERRORS
                                                 if "no sources" not in m])
def test_initialisation_rejects_centers_as_deblend_does(centers, match):
    """The initialisation's own check (used without deblend) gives the same message."""
    with pytest.raises(BadInputError) as from_deblend:
        validate_centers(centers, (H, W))
    with pytest.raises(BadInputError) as from_init:
        round_centers(centers, (H, W))
    assert str(from_init.value) == str(from_deblend.value)


def test_centers_on_the_edges_are_inside():
    edges = [[0, 0], [-0.5, 21.49], [19.49, 0], [19.4, 21.4], [10, -0.45]]
    np.testing.assert_array_equal(validate_centers(edges, (H, W)), np.float32(edges))


@pytest.mark.parametrize(
    ("centers", "kept", "match"),
    [
        pytest.param([[5, 5], [5.2, 5.1], [9, 9]], [0, 2], r"1 duplicate source\(s\) merged.*1->0",
                     id="within radius"),
        pytest.param([[5, 5], [9, 9], [5.4, 4.6]], [0, 1], "2->0", id="same pixel"),
        pytest.param([[5, 5]] * 4 + [[9, 9]], [0, 4], r"3 duplicate.*1->0, 2->0, 3->0",
                     id="many copies"),
    ],
)
def test_duplicate_centers_are_merged_with_a_warning(centers, kept, match):
    with pytest.warns(InputWarning, match=match):
        out = validate_centers(centers, (H, W))
    np.testing.assert_array_equal(out, np.float32(centers)[kept])


def test_more_centers_than_max_sources():
    centers = [[2, 2], [6, 6], [10, 10], [14, 14]]
    assert len(validate_centers(centers, (H, W), max_sources=4)) == 4
    with pytest.raises(BadInputError, match="4 sources exceed max_sources=3"):
        validate_centers(centers, (H, W), max_sources=3)
    with pytest.warns(InputWarning):  # duplicates merged before the limit is applied
        assert len(validate_centers(centers + [[2, 2]], (H, W), max_sources=4)) == 4


# ----------------------------------------------------------------------------- options

OPTION_ERRORS = [
    (dict(max_iter=-1), "max_iter must be an integer >= 0, got -1"),
    (dict(max_iter=2.5), "max_iter must be an integer >= 0, got 2.5"),
    (dict(max_iter=True), "max_iter must be an integer >= 0, got True"),
    (dict(max_iter=MAX_ITER_LIMIT + 1), f"max_iter must be <= {MAX_ITER_LIMIT}"),
    (dict(min_iter=-3), "min_iter must be an integer >= 0"),
    (dict(e_rel=0.0), "e_rel must be a finite number > 0, got 0.0"),
    (dict(e_rel=-1e-3), "e_rel must be a finite number > 0"),
    (dict(e_rel=float("nan")), "e_rel must be a finite number > 0, got nan"),
    (dict(e_rel=float("inf")), "e_rel must be a finite number > 0, got inf"),
    (dict(e_rel="0.1"), "e_rel must be a finite number > 0, got '0.1'"),
    (dict(optimizer="sgd"), r"unknown optimizer 'sgd'; choose one of \('adaprox', 'fista'\)"),
    (dict(optimizer=None), "unknown optimizer None"),
    (dict(sparsity="l2"), r"unknown sparsity 'l2'; choose one of \(None, 'l0', 'l1'\)"),
    (dict(monotonic="yes"), "monotonic must be True or False, got 'yes'"),
    (dict(symmetric=2), r"symmetric must be True or False, or a sequence .* got 2"),
    (dict(symmetric=[True, 2]), r"symmetric must be .* per source, got \[True, 2\]"),
    (dict(symmetric="yes"), "symmetric must be True or False"),
    (dict(max_components=3), "max_components must be 0, 1 or 2, got 3"),
    (dict(min_snr=0), "min_snr must be a finite number > 0"),
    (dict(bg_thresh=-1.0), "bg_thresh must be a finite number >= 0"),
    (dict(morph_step=0), "morph_step must be a finite number > 0"),
    (dict(block=0), "block must be >= 1"),
    (dict(max_sources=0), "max_sources must be None or an integer >= 1, got 0"),
    (dict(maxiter=10), r"unknown option\(s\) \['maxiter'\]; known:"),
]


@pytest.mark.parametrize(("options", "match"), [pytest.param(o, m, id=str(o))
                                                 for o, m in OPTION_ERRORS])
def test_options_out_of_range(options, match):
    with pytest.raises(BadInputError, match=match):
        resolve_options(**options)


def test_numpy_scalars_are_accepted_as_options():
    opts = resolve_options(max_iter=np.int64(7), e_rel=np.float32(1e-2), monotonic=np.bool_(0),
                           max_sources=np.int32(5))
    assert opts["max_iter"] == 7 and type(opts["max_iter"]) is int
    assert type(opts["e_rel"]) is float and opts["monotonic"] is False
    assert opts["max_sources"] == 5 and opts.config.max_iter == 7


# ------------------------------------------------------------------ deblend / batch / detect


@pytest.fixture(scope="module")
def blend():
    return sj.datasets.synthetic_blend(3, shape=(24, 24), n_bands=2, n_sources=2, psf_size=11,
                                       edge_margin=6)


@pytest.mark.parametrize(
    ("centers", "options", "match"),
    [
        pytest.param([[np.nan, 1.0]], {}, "NaN/inf center", id="NaN center"),
        pytest.param([[30.0, 1.0]], {}, "outside the image of shape", id="outside"),
        pytest.param(np.zeros((0, 2)), {}, "no sources", id="empty centers"),
        pytest.param([[5, 5], [9, 9], [14, 14]], dict(max_sources=2),
                     "3 sources exceed max_sources=2", id="too many"),
        pytest.param([[5, 5]], dict(max_iter=-1), "max_iter must be", id="max_iter"),
        pytest.param([[5, 5]], dict(e_rel=0), "e_rel must be", id="e_rel"),
        pytest.param([[5, 5]], dict(optimizer="newton"), "unknown optimizer", id="optimizer"),
        pytest.param([[5, 5]], dict(sparsity="l3"), "unknown sparsity", id="constraint"),
        pytest.param([[5, 5], [14, 14]], dict(symmetric=[True]),
                     "symmetric: 1 per-source flags for 2 centers", id="symmetric flags"),
        pytest.param(None, dict(symmetric=[True, False]),
                     r"symmetric: 2 per-source flags but no centers", id="symmetric, detect"),
    ],
)
def test_deblend_rejects(blend, centers, options, match):
    with pytest.raises(BadInputError, match=match):
        sj.deblend(blend.observation, centers, **options)


def test_deblend_rejects_a_non_observation(blend):
    with pytest.raises(BadInputError, match="expected an Observation"):
        sj.deblend(blend.observation.images, blend.centers)


def test_no_centers_means_detect(blend):
    found = detect(blend.observation)
    assert len(found) >= 1
    result = sj.deblend(blend.observation, None, max_iter=MAX_ITER)
    np.testing.assert_array_equal(result.centers, found)


def test_no_centers_and_nothing_detected(blend):
    obs = blend.observation
    flat = make_observation(np.zeros(obs.shape), obs.variance, obs.psfs)
    assert detect(flat).shape == (0, 2)
    with pytest.raises(BadInputError, match="no sources detected and no centers given"):
        sj.deblend(flat, None, max_iter=MAX_ITER)


def test_detect_limits(blend):
    obs = blend.observation
    n = len(detect(obs))
    with pytest.raises(BadInputError, match=f"found {n} sources, more than max_sources={n - 1}"):
        detect(obs, max_sources=n - 1)
    with pytest.raises(BadInputError, match=f"more than max_sources={n - 1}"):
        sj.deblend(obs, None, max_sources=n - 1)
    with pytest.raises(BadInputError, match="scales must be non-negative"):
        detect(obs, scales=[-1])
    with pytest.raises(BadInputError, match=r"detect_image \(3, 3\) does not match"):
        detect(obs, detect_image=np.zeros((3, 3)))


def test_duplicate_centers_are_merged_in_deblend(blend):
    centers = np.concatenate([blend.centers, blend.centers[:1] + 0.1])
    with pytest.warns(InputWarning, match="duplicate source"):
        result = sj.deblend(blend.observation, centers, max_iter=MAX_ITER)
    np.testing.assert_array_equal(result.centers, blend.centers)


def test_batch_flags_bad_blends_and_fits_the_rest(blend):
    obs = blend.observation
    masked = dataclasses.replace(obs, weights=np.zeros_like(obs.weights))
    items = [
        (obs, blend.centers),
        (obs, [[np.nan, 2.0]]),
        (masked, blend.centers),
        (obs.images, blend.centers),
        (obs, np.zeros((0, 2))),
    ]
    with pytest.warns(UserWarning, match="skipped"):
        results = deblend_batch(items, max_iter=MAX_ITER)
    assert [r.status for r in results][1:] == ["failed"] * 4
    assert "NaN/inf center" in results[1].error
    assert "every pixel is masked" in results[2].error
    assert "expected an Observation" in results[3].error
    assert "no sources" in results[4].error
    assert results[0].error is None and np.isfinite(results[0].spectra).all()


def test_io_load_of_a_file_that_is_not_a_result(tmp_path):
    from scarlet_jax.io import load

    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(BadFileError, match="junk.npz"):
        load(path)


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys, monkeypatch):
    from scarlet_jax import cli

    monkeypatch.setattr(cli, "enable_compilation_cache", lambda *a, **k: None)
    inputs = _inputs()
    path = tmp_path / "even_psf.npz"
    np.savez(path, images=inputs["images"], variance=inputs["variance"],
             psfs=np.ones((B, 4, 4)) / 16)
    code = cli.main(["deblend", str(path), "--out", str(tmp_path / "out"), "--no-plots"])
    assert code == 2
    assert "psfs (3, 4, 4): sizes must be odd" in capsys.readouterr().err


# -------------------------------------------------------------------------- fit guards


def _no_unflagged_nan(result):
    """Parameters are always finite; NaN in the loss history only with ``diverged``."""
    assert np.isfinite(result.spectra).all() and np.isfinite(result.morphs).all()
    if not result.diverged:
        assert np.isfinite(result.loss).all()


def test_a_non_finite_loss_reverts_and_flags_diverged(blend):
    obs = blend.observation
    huge = dataclasses.replace(obs, images=obs.images * np.float32(1e20))  # loss overflows
    result = sj.deblend(huge, blend.centers, max_iter=MAX_ITER)
    assert result.diverged and result.status == "diverged" and not result.converged
    assert result.n_iter == 1 and np.isnan(result.loss).all()
    _no_unflagged_nan(result)


def _final_loss_not_worse(result):
    initial, final = float(result.loss[0]), 0.5 * result.chi2()
    assert final <= initial * (1 + 1e-4), (initial, final)


def test_a_step_to_non_finite_values_reverts_to_the_last_finite_state(blend):
    # spectrum steps of 1e30 x noise_rms: the first step's spectra make the next loss inf
    result = sj.deblend(blend.observation, blend.centers, max_iter=MAX_ITER,
                        spectrum_step_noise=1e30)
    assert result.diverged and result.status == "diverged"
    assert result.n_iter == 2 and np.isfinite(result.loss[0]) and np.isnan(result.loss[1])
    _no_unflagged_nan(result)
    _final_loss_not_worse(result)  # the state whose loss was inf is not the one returned


def test_a_loss_blow_up_is_flagged_diverged(blend):
    result = sj.deblend(blend.observation, blend.centers, max_iter=MAX_ITER,
                        spectrum_step_noise=1e18)
    assert result.diverged and result.status == "diverged"
    assert result.loss[-1] > 1e3 * result.loss[0]
    _no_unflagged_nan(result)
    _final_loss_not_worse(result)


def test_one_diverging_blend_leaves_the_rest_of_the_batch_untouched(blend):
    obs = blend.observation
    huge = dataclasses.replace(obs, images=obs.images * np.float32(1e20))
    other = sj.datasets.synthetic_blend(5, shape=(24, 24), n_bands=2, n_sources=2, psf_size=11,
                                        edge_margin=6)
    items = [(obs, blend.centers), (huge, blend.centers), (other.observation, other.centers)]
    results = deblend_batch(items, max_iter=MAX_ITER)
    assert [r.diverged for r in results] == [False, True, False]
    for item, got in zip(items[::2], results[::2], strict=True):
        alone = sj.deblend(*item, max_iter=MAX_ITER)
        np.testing.assert_allclose(got.spectra, alone.spectra, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.loss, alone.loss, rtol=1e-5)
    for r in results:
        _no_unflagged_nan(r)
