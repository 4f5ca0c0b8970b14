"""Tests for scarlet_jax.initialization (host-side, numpy).

About the reference file: scarlet lite updates spectra and morphs *in place* during the fit,
and the reference dump kept references to those arrays, so its ``init_comp*_spectrum`` equal
``final_comp*_spectrum`` byte for byte and its ``init_comp*_morph`` are morphs from the first
fit iterations (their core/disk pairs break the split invariant, see
``test_reference_init_morphs_are_not_initial``). What the file does pin down about the
initialisation: the component count, sources, peaks and boxes, and ``final_loss_history[0]``,
the log-likelihood of the initial model (initialisation + ``fit_spectra``) before the first
update. ``test_hsc_initial_loss_matches_reference`` checks that number.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
from conftest import REFERENCE

from scarlet_jax.components import InitComponent
from scarlet_jax.detect import detection_image
from scarlet_jax.errors import BadInputError
from scarlet_jax.initialization import (
    PEAK_RATIO,
    colour_difference,
    convolve_same,
    faint_sources,
    fit_spectra,
    init_components,
    local_bump,
    monotonic_mask,
    multifit_spectra,
    point_source_component,
    psf_weighted_snr,
    shared_light,
)
from scarlet_jax.observation import make_observation
from scarlet_jax.options import LSST_PIPELINE, group
from scarlet_jax.prox import uncentered_symmetry

# scarlet lite's initialisation (the init options of the LSST recipe), with the spectra
# fitted by inverse variance
LITE = {k: v for k, v in LSST_PIPELINE.items() if k in group("init")}
PIPELINE = dict(LITE, weighted_spectra=True)
HSC_SNR = [2363, 1645, 186, 74.6, 43.2, 68.4, 17.6]  # SCARLET_LITE.md (g), as printed there
HSC_N_COMPONENTS = [2, 2, 2, 1, 1, 1, 1]

#: The bright-first split alone (the defaults before the hybrid split and the bump seeds):
#: tests of one initialisation step switch the others off.
GREEDY = dict(init_share_own=0.0, init_bump_seed=0.0, init_bump_colour=0.0)
SEED = {**GREEDY, "init_bump_seed": 0.5}


def _ref_components(ref, stage):
    n = int(ref[f"{stage}_n_components"])
    return [
        InitComponent(
            source=int(ref[f"{stage}_comp{i}_source"]),
            peak=tuple(int(v) for v in ref[f"{stage}_comp{i}_peak"]),
            origin=tuple(int(v) for v in ref[f"{stage}_comp{i}_origin"]),
            spectrum=ref[f"{stage}_comp{i}_spectrum"],
            morph=ref[f"{stage}_comp{i}_morph"],
        )
        for i in range(n)
    ]


def _model(obs, components):
    """(B, H, W) convolved model: each spectrum x morph placed in the image, convolved."""
    _, height, width = obs.shape
    scene = np.zeros((obs.shape[0], height, width))
    for c in components:
        h, w = c.morph.shape
        oy, ox = c.origin
        scene[:, oy : oy + h, ox : ox + w] += np.asarray(c.spectrum, float)[:, None, None] * c.morph
    # a band-diagonal convolution: convolve each band with its own kernel
    conv = convolve_same(scene, obs.diff_kernel)  # (B, B, H, W)
    return conv[np.arange(obs.shape[0]), np.arange(obs.shape[0])]


def _log_likelihood(obs, components):
    return -0.5 * float(np.sum(obs.weights * (obs.images - _model(obs, components)) ** 2))


@pytest.fixture(scope="module")
def hsc_init(hsc):
    obs, centers = hsc
    return init_components(obs, centers, **PIPELINE)


@pytest.fixture(scope="module")
def hsc_init_lite(hsc):
    """Spectra fitted with uniform pixel weights, as scarlet lite's multifit_spectra does."""
    obs, centers = hsc
    return init_components(obs, centers, **LITE)


# ------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "shape,kshape", [((20, 17), (5, 7)), ((9, 11), (15, 13)), ((1, 6), (3, 3))]
)
def test_convolve_same_is_direct_real_space_sum(rng, shape, kshape):
    signal = pytest.importorskip("scipy.signal")
    images = rng.normal(size=(2,) + shape)
    kernels = rng.normal(size=(3,) + kshape)
    out = convolve_same(images, kernels)
    assert out.shape == (2, 3) + shape
    for i in range(2):
        for b in range(3):
            expected = signal.convolve2d(images[i], kernels[b], mode="same")
            np.testing.assert_allclose(out[i, b], expected, atol=1e-12)


def test_convolve_same_orientation():
    """A delta at (y, x) convolved with a kernel puts k[i, j] at (y + i - kh//2, x + j - kw//2):
    a true convolution, not a correlation."""
    image = np.zeros((9, 9))
    image[4, 4] = 1.0
    kernel = np.arange(9.0).reshape(1, 3, 3)
    np.testing.assert_allclose(convolve_same(image, kernel)[0, 3:6, 3:6], kernel[0], atol=1e-12)


def _bfs_reference(x, start, variance=0.0):
    """Literal queue-based BFS of lite's get_valid_monotonic_pixels (threshold 0)."""
    h, w = x.shape
    valid = np.zeros(x.shape, bool)
    valid[start] = True
    queue = collections.deque([start])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ni, nj = i + di, j + dj
            if 0 <= ni < h and 0 <= nj < w and not valid[ni, nj]:
                if x[ni, nj] <= x[i, j] + variance and x[ni, nj] > 0:
                    valid[ni, nj] = True
                    queue.append((ni, nj))
    return valid


@pytest.mark.parametrize("seed", range(6))
def test_monotonic_mask_matches_breadth_first_search(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(8, 40, size=2)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    x = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2)) + rng.normal(0, 0.05, (h, w))
    valid, peak = monotonic_mask(x, (cy, cx))
    # the start pixel is the argmax within radius 1 of the centre
    win = x[max(cy - 1, 0) : cy + 2, max(cx - 1, 0) : cx + 2]
    assert x[peak] == win.max()
    expected = _bfs_reference(x, peak)
    np.testing.assert_array_equal(valid, expected)
    assert 1 < valid.sum() < valid.size
    # a variance tolerance accepts more pixels
    loose, _ = monotonic_mask(x, (cy, cx), variance=0.05)
    np.testing.assert_array_equal(loose, _bfs_reference(x, peak, 0.05))
    assert loose.sum() >= valid.sum()


def test_monotonic_mask_rejects_non_positive_and_rising_pixels():
    x = np.array(
        [
            [0.1, 0.2, 0.3, 0.0],
            [0.2, 0.9, 1.0, 0.5],
            [0.0, 0.8, 0.4, 0.6],
        ]
    )
    valid, peak = monotonic_mask(x, (1, 1))
    assert peak == (1, 2)  # re-peaked within radius 1
    expected = np.array(
        [
            [1, 1, 1, 0],  # (0,3) is 0: rejected
            [1, 1, 1, 1],
            [0, 1, 1, 0],  # (2,3)=0.6 rises from 0.5 and 0.4: rejected
        ],
        bool,
    )
    np.testing.assert_array_equal(valid, expected)
    free, _ = monotonic_mask(x, (1, 1), monotonic=False)
    assert free[2, 3] and not free[0, 3]


def test_host_symmetry_matches_reference_operator(require_file):
    path = require_file(REFERENCE / "operators.npz")
    with np.load(path) as ops:
        for n in range(int(ops["count"])):
            x, center = ops[f"mono_{n}_input"], ops[f"mono_{n}_center"]
            np.testing.assert_array_equal(
                uncentered_symmetry(x, center, xp=np), ops[f"sym_{n}_output"],
                err_msg=f"case {n}",
            )


# -------------------------------------------------------------------- the HSC blend


def test_hsc_psf_weighted_snr(hsc):
    obs, centers = hsc
    snr = [psf_weighted_snr(obs, c) for c in np.rint(centers).astype(int)]
    np.testing.assert_allclose(snr, HSC_SNR, rtol=3e-3)
    # floor(SNR) / min_snr >= 2 -> two components
    assert [2 if np.floor(s) / 50 >= 2 else 1 for s in snr] == HSC_N_COMPONENTS


def test_hsc_components_and_boxes_match_reference(hsc_init, reference_fit):
    ref = _ref_components(reference_fit, "init")
    counts = np.bincount([c.source for c in hsc_init], minlength=7)
    assert counts.tolist() == HSC_N_COMPONENTS
    assert len(hsc_init) == len(ref) == 10
    for i, (mine, theirs) in enumerate(zip(hsc_init, ref, strict=True)):
        assert mine.source == theirs.source, i
        assert mine.peak == theirs.peak, i
        lo = np.subtract(mine.origin, theirs.origin)
        hi = lo + np.subtract(mine.morph.shape, theirs.morph.shape)
        assert np.abs(lo).max() <= 2 and np.abs(hi).max() <= 2, (i, mine.origin, theirs.origin)
    # in fact the boxes agree exactly (measured)
    assert [(c.origin, c.morph.shape) for c in hsc_init] == [(c.origin, c.morph.shape) for c in ref]


def test_hsc_initial_loss_matches_reference(hsc, hsc_init_lite, reference_fit):
    """The initial model's log-likelihood (lite's first loss entry, -268,778.3) pins the
    initial morphs and the fit_spectra spectra together."""
    obs, _ = hsc
    expected = float(reference_fit["final_loss_history"][0])
    assert _log_likelihood(obs, hsc_init_lite) == pytest.approx(expected, rel=1e-5)


def test_hsc_weighted_spectra_fit_the_data_better(hsc, hsc_init, hsc_init_lite):
    obs, _ = hsc
    weighted, uniform = _log_likelihood(obs, hsc_init), _log_likelihood(obs, hsc_init_lite)
    assert weighted >= uniform
    assert weighted == pytest.approx(uniform, rel=0.02)
    for a, b in zip(hsc_init, hsc_init_lite, strict=True):
        np.testing.assert_array_equal(a.morph, b.morph)


def test_hsc_reference_init_arrays_are_not_initial(hsc, hsc_init_lite, reference_fit):
    """Documents the aliasing of the reference dump (see the module docstring)."""
    obs, _ = hsc
    ref = reference_fit
    for i in range(10):
        np.testing.assert_array_equal(ref[f"init_comp{i}_spectrum"], ref[f"final_comp{i}_spectrum"])
    # built from the reference "init" arrays, the model is far from the initial loss
    loss0 = float(ref["final_loss_history"][0])
    assert abs(_log_likelihood(obs, _ref_components(ref, "init")) / loss0 - 1) > 0.3
    # and its core/disk pairs break the split invariant (disk == 1 wherever core > 0),
    # which the real initial pairs satisfy
    ref_init = _ref_components(ref, "init")
    broken = [ref_init[k + 1].morph[ref_init[k].morph > 0].min() for k in (0, 2, 4)]
    assert min(broken) < 0.5
    for k in (0, 2, 4):
        core, disk = hsc_init_lite[k].morph, hsc_init_lite[k + 1].morph
        np.testing.assert_allclose(disk[core > 0], 1.0)


def test_hsc_morphs_resemble_reference(hsc_init, reference_fit):
    """The reference morphs come from the first fit iterations, so only a loose check:
    same boxes, strongly correlated, our morph peaks at the source centre."""
    ref = _ref_components(reference_fit, "init")
    for i, (mine, theirs) in enumerate(zip(hsc_init, ref, strict=True)):
        assert mine.morph.shape == theirs.morph.shape
        local = tuple(np.subtract(mine.peak, mine.origin))
        assert mine.morph[local] == pytest.approx(1.0), i
        corr = np.corrcoef(mine.morph.ravel(), theirs.morph.ravel())[0, 1]
        assert corr > 0.8, (i, corr)


def test_hsc_component_invariants(hsc, hsc_init):
    obs, _ = hsc
    for c in hsc_init:
        assert c.morph.dtype == np.float32 and c.spectrum.dtype == np.float32
        assert c.spectrum.shape == (obs.shape[0],)
        assert np.all(c.spectrum >= 0) and np.all(np.isfinite(c.spectrum))
        assert c.morph.max() == pytest.approx(1.0) and c.morph.min() >= 0
        oy, ox = c.origin
        h, w = c.morph.shape
        assert 0 <= oy and 0 <= ox and oy + h <= obs.shape[1] and ox + w <= obs.shape[2]
    for k in (0, 2, 4):  # core/disk split at 0.25 of one morph
        core, disk = hsc_init[k].morph, hsc_init[k + 1].morph
        morph = 0.75 * core + 0.25 * disk
        np.testing.assert_allclose(np.maximum(morph - 0.25, 0) / 0.75, core, atol=1e-6)
        np.testing.assert_allclose(np.minimum(morph, 0.25) / 0.25, disk, atol=1e-6)


def test_hsc_single_component_spectrum_without_fit(hsc):
    """Before fit_spectra: spectrum = images[:, c] / convolved_detect[:, c] * max(morph)."""
    obs, centers = hsc
    comps = init_components(obs, centers, fit_spectra=False, **PIPELINE)
    detect = detection_image(obs)
    convolved = convolve_same(detect, obs.diff_kernel)
    last = comps[-1]  # source 6, one component
    cy, cx = last.peak
    sym = uncentered_symmetry(detect, (cy, cx), xp=np, centre_quirk=False)
    valid, _ = monotonic_mask(sym, (cy, cx))
    morph_max = np.where(valid, sym, 0).max()
    expected = obs.images[:, cy, cx] / convolved[:, cy, cx] * morph_max
    np.testing.assert_allclose(last.spectrum, np.maximum(expected, 0), rtol=1e-5)


def test_init_is_deterministic_and_leaves_its_inputs_alone(hsc):
    obs, centers = hsc
    images, given = np.array(obs.images), np.array(centers)
    first = init_components(obs, centers, **PIPELINE)
    again = init_components(obs, centers, **PIPELINE)
    assert len(first) == len(again)
    for a, b in zip(first, again, strict=True):
        assert (a.source, a.peak, a.origin) == (b.source, b.peak, b.origin)
        np.testing.assert_array_equal(a.morph, b.morph)
        np.testing.assert_array_equal(a.spectrum, b.spectrum)
    np.testing.assert_array_equal(np.asarray(obs.images), images)
    np.testing.assert_array_equal(np.asarray(centers), given)


def test_max_components_options(hsc):
    obs, centers = hsc
    one = init_components(obs, centers, max_components=1, **PIPELINE)
    assert [c.source for c in one] == list(range(7))
    psf = init_components(obs, centers, max_components=0, fit_spectra=False, **PIPELINE)
    for c, center in zip(psf, np.rint(centers).astype(int), strict=True):
        expected = point_source_component(obs, center, c.source)
        np.testing.assert_array_equal(c.morph, expected.morph)
        np.testing.assert_array_equal(c.spectrum, expected.spectrum)


# ---------------------------------------------------------------- point-source fallback


def test_point_source_fallback_when_morph_is_empty(hsc):
    obs, centers = hsc
    comps = init_components(obs, centers, detect=np.zeros(obs.shape[1:]), fit_spectra=False)
    assert [c.source for c in comps] == list(range(7))
    psf = np.asarray(obs.model_psf, float)
    for c, center in zip(comps, np.rint(centers).astype(int), strict=True):
        cy, cx = center
        expected = point_source_component(obs, center, c.source)
        assert c.origin == expected.origin and c.peak == (cy, cx)
        np.testing.assert_array_equal(c.morph, expected.morph)
        np.testing.assert_array_equal(c.spectrum, expected.spectrum)
        # the morph is the model PSF (max 1), clipped to the image
        oy, ox = cy - 7, cx - 7
        y0, x0 = max(oy, 0), max(ox, 0)
        h, w = c.morph.shape
        assert c.origin == (y0, x0)
        np.testing.assert_allclose(
            c.morph, psf[y0 - oy : y0 - oy + h, x0 - ox : x0 - ox + w] / psf.max(), rtol=1e-6
        )
        # the convolved point-source model reproduces the data at the centre pixel
        model = _model(obs, [c])
        data = obs.images[:, cy, cx]
        np.testing.assert_allclose(model[:, cy, cx], np.maximum(data, 0), rtol=1e-4, atol=1e-7)

    # a threshold above every detection pixel empties every morph too
    high = init_components(obs, centers, initial_bg_thresh=1e9, fit_spectra=False)
    for a, b in zip(high, comps, strict=True):
        assert a.source == b.source and a.origin == b.origin
        np.testing.assert_array_equal(a.morph, b.morph)


def test_point_source_at_the_corner(hsc):
    obs, _ = hsc
    c = point_source_component(obs, (0.2, -0.3), source=3)
    assert c.source == 3 and c.peak == (0, 0) and c.origin == (0, 0)
    assert c.morph.shape == (8, 8) and c.morph[0, 0] == pytest.approx(1.0)


# ---------------------------------------------------------------------- fit_spectra


def _gaussian(shape, center, sigma):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma**2))
    return g / g.max()


@pytest.fixture(scope="module")
def synthetic_scene():
    """Two Gaussian sources with known spectra, rendered through each band's PSF."""
    signal = pytest.importorskip("scipy.signal")
    shape, n_bands = (40, 44), 3
    yy, xx = np.mgrid[-10:11, -10:11]
    psfs = np.stack([np.exp(-(yy**2 + xx**2) / (2 * s**2)) for s in (1.2, 1.6, 2.0)])
    psfs /= psfs.sum(axis=(1, 2), keepdims=True)
    spectra = np.array([[3.0, 2.0, 1.0], [0.5, 1.5, 2.5]])
    boxes = [((6, 8), (21, 21)), ((14, 18), (25, 23))]
    components = []
    for k, ((oy, ox), (h, w)) in enumerate(boxes):
        morph = _gaussian((h, w), (h // 2, w // 2), 2.0 + k)
        components.append(
            InitComponent(k, (oy + h // 2, ox + w // 2), (oy, ox), np.ones(n_bands), morph)
        )
    # observation with a placeholder image to get the difference kernels
    variance = np.full((n_bands,) + shape, 0.01)
    obs = make_observation(np.zeros((n_bands,) + shape), variance, psfs)
    scene = np.zeros((n_bands,) + shape)
    for c, s in zip(components, spectra, strict=True):
        (oy, ox), (h, w) = c.origin, c.morph.shape
        scene[:, oy : oy + h, ox : ox + w] += s[:, None, None] * c.morph
    images = np.stack(
        [signal.convolve2d(scene[b], obs.diff_kernel[b], mode="same") for b in range(n_bands)]
    )
    return images, variance, psfs, components, spectra


def test_fit_spectra_recovers_known_spectra(synthetic_scene):
    images, variance, psfs, components, spectra = synthetic_scene
    obs = make_observation(images, variance, psfs)
    fitted = fit_spectra(obs, components)
    np.testing.assert_allclose([c.spectrum for c in fitted], spectra, rtol=1e-4)
    for a, b in zip(fitted, components, strict=True):
        assert a.origin == b.origin and a.source == b.source and a.morph is b.morph
    np.testing.assert_allclose(multifit_spectra(obs, components), spectra, rtol=1e-4)


def test_fit_spectra_with_noise_is_the_weighted_least_squares_solution(synthetic_scene, rng):
    images, variance, psfs, components, spectra = synthetic_scene
    variance = variance * rng.uniform(0.5, 2.0, size=variance.shape)
    noisy = images + rng.normal(size=images.shape) * np.sqrt(variance)
    obs = make_observation(noisy, variance, psfs)
    fitted = np.array([c.spectrum for c in fit_spectra(obs, components)], float)
    np.testing.assert_allclose(fitted, spectra, atol=0.06)

    # a stationary point of the weighted loss: moving any spectrum entry makes it worse
    def loss(s):
        return _log_likelihood(
            obs, [c._replace(spectrum=v) for c, v in zip(components, s, strict=True)]
        )

    best = loss(fitted)
    for k in range(2):
        for b in range(3):
            for step in (-1e-3, 1e-3):
                moved = fitted.copy()
                moved[k, b] += step
                assert loss(moved) <= best + 1e-6


def test_fit_spectra_ignores_masked_pixels(synthetic_scene):
    images, variance, psfs, components, spectra = synthetic_scene
    bad = images.copy()
    bad[:, 20:24, 20:24] = 1e3  # garbage under a mask
    mask = np.zeros(images.shape, bool)
    mask[:, 20:24, 20:24] = True
    obs = make_observation(bad, variance, psfs, mask=mask)
    weighted = np.array([c.spectrum for c in fit_spectra(obs, components)])
    np.testing.assert_allclose(weighted, spectra, rtol=1e-4)
    uniform = np.array([c.spectrum for c in fit_spectra(obs, components, weighted=False)])
    # the uniform (lite) fit also leaves masked pixels out
    np.testing.assert_allclose(uniform, spectra, rtol=1e-4)


def test_fit_spectra_clips_negative_and_handles_degenerate(synthetic_scene):
    images, variance, psfs, components, spectra = synthetic_scene
    obs = make_observation(-images, variance, psfs)
    assert all(np.all(c.spectrum == 0) for c in fit_spectra(obs, components))
    obs = make_observation(images, variance, psfs)
    twins = [components[0], components[0]._replace(source=1)]
    with pytest.raises(np.linalg.LinAlgError):
        multifit_spectra(obs, twins)
    fitted = fit_spectra(obs, twins)  # minimum-norm solution: the flux is shared equally
    np.testing.assert_allclose(fitted[0].spectrum, fitted[1].spectrum, rtol=1e-5)
    assert fit_spectra(obs, []) == []


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "centers,match",
    [
        (np.array([10.0, 10.0]), r"shape \(S, 2\)"),
        (np.zeros((2, 3)), r"shape \(S, 2\)"),
        (np.array([[10.0, 10.0], [np.nan, 3.0]]), r"NaN/inf.*source=1"),
        (np.array([[10.0, 10.0], [5.0, np.inf]]), r"NaN/inf"),
        (np.array([[-1.0, 10.0]]), r"outside the image of shape \(58, 48\).*source=0"),
        (np.array([[10.0, 10.0], [57.6, 10.0]]), r"outside.*source=1"),
        (np.array([[10.0, 48.0]]), r"outside"),
        (np.array([["a", "b"]]), r"real \(S, 2\) array"),
    ],
)
def test_bad_centers(hsc, centers, match):
    obs, _ = hsc
    with pytest.raises(BadInputError, match=match):
        init_components(obs, centers)


def test_bad_options(hsc):
    obs, centers = hsc
    with pytest.raises(BadInputError, match="detect"):
        init_components(obs, centers, detect=np.zeros((10, 10)))
    detect = detection_image(obs)
    detect[3, 4] = np.nan
    with pytest.raises(BadInputError, match="y=3, x=4"):
        init_components(obs, centers, detect=detect)
    with pytest.raises(BadInputError, match="max_components"):
        init_components(obs, centers, max_components=3)
    with pytest.raises(BadInputError, match="min_snr"):
        init_components(obs, centers, min_snr=0)
    with pytest.raises(BadInputError, match="disk_percentile"):
        init_components(obs, centers, disk_percentile=100)
    with pytest.raises(BadInputError, match="padding"):
        init_components(obs, centers, padding=-1)
    with pytest.raises(BadInputError, match="bg_thresh .a params option"):
        init_components(obs, centers, bg_thresh=1.0)  # the fit's, not the initialisation's


def test_edge_centers_are_accepted(hsc):
    obs, _ = hsc
    centers = np.array([[-0.4, 0.0], [57.4, 47.4], [0.0, 47.0]])
    comps = init_components(obs, centers)
    assert sorted({c.source for c in comps}) == [0, 1, 2]
    assert init_components(obs, np.zeros((0, 2))) == []
    assert init_components(obs, np.zeros((0, 2)), init_share_own=0.5, init_bump_seed=0.25) == []


# ------------------------------------------------ noise-relative cut, bright-first split


def _bright_and_faint(scale=1.0):
    """A bright round galaxy and a faint one 6 px away on its wing (2 bands, noise 1 x
    ``scale``, everything in units of ``scale``)."""
    rng = np.random.default_rng(5)
    h = w = 48
    yy, xx = np.mgrid[:h, :w]

    def gauss(cy, cx, s):
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        return g / g.sum()

    bright = np.array([8000.0, 6000.0])[:, None, None] * gauss(24, 20, 4.0)
    faint = np.array([150.0, 200.0])[:, None, None] * gauss(24, 26, 1.8)
    py, px = np.mgrid[-7:8, -7:8]
    psf = np.exp(-(py**2 + px**2) / (2 * 1.2**2))
    psfs = np.stack([psf / psf.sum()] * 2)
    images = bright + faint + rng.normal(size=bright.shape)
    obs = make_observation((images * scale).astype(np.float32),
                           np.full(images.shape, scale**2, np.float32), psfs.astype(np.float32))
    return obs, np.array([[24.0, 20.0], [24.0, 26.0]]), np.array([[8000, 6000], [150, 200]])


def _init_fluxes(comps, n_sources):
    flux = np.zeros((n_sources, len(comps[0].spectrum)))
    for c in comps:
        flux[c.source] += np.asarray(c.spectrum) * np.asarray(c.morph).sum()
    return flux


def test_noise_relative_cut_does_not_depend_on_units():
    """The same blend in units 1 and 1000: lite's cut (mean noise rms x thresh, compared
    with the chi^2 image) changes the boxes; the noise-relative cut gives the same ones."""
    boxes = {}
    for scale in (1.0, 1000.0):
        obs, centers, _ = _bright_and_faint(scale)
        for rel in (False, True):
            comps = init_components(obs, centers, init_noise_relative=rel,
                                    init_subtract=False, symmetric_dominated=False)
            boxes[scale, rel] = [(c.origin, np.asarray(c.morph).shape) for c in comps]
    assert boxes[1.0, True] == boxes[1000.0, True]
    assert boxes[1.0, False] != boxes[1000.0, False]


def test_bright_first_split_and_dominated_sources():
    """Initialised on the image minus the bright neighbour, the faint source's morphology
    no longer holds the neighbour's wing (a box under half the size), its flux stays
    right; it is marked symmetric (its centre is dominated by the neighbour), the bright
    one is not."""
    obs, centers, true = _bright_and_faint()
    plain = init_components(obs, centers, init_noise_relative=True, init_subtract=False,
                            symmetric_dominated=False)
    split = init_components(obs, centers, init_noise_relative=True, init_subtract=True,
                            symmetric_dominated=True)

    def faint_area(comps):
        return max(np.asarray(c.morph).size for c in comps if c.source == 1)

    assert faint_area(split) < 0.5 * faint_area(plain)
    assert np.abs(_init_fluxes(split, 2) / true - 1).max() < 0.3
    assert [c.source for c in split] == sorted(c.source for c in split)  # source order kept
    assert all(c.symmetric == (c.source == 1) for c in split)
    assert not any(c.symmetric for c in plain)


def _compact_beside_extended():
    """A bright extended galaxy (flux 2e4, sigma 5) and a compact one 10 px away (3e3,
    sigma 1.5) whose centre is brighter in the detection image (3 bands, noise 1)."""
    h = w = 48
    yy, xx = np.mgrid[:h, :w]

    def gauss(cy, cx, s):
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        return g / g.sum()

    image = 2e4 * gauss(24, 16, 5.0) + 3e3 * gauss(24, 26, 1.5)
    py, px = np.mgrid[-10:11, -10:11]
    psf = np.exp(-(py**2 + px**2) / (2 * 1.2**2))
    images = image + np.random.default_rng(0).normal(0, 1, (3, h, w))
    obs = make_observation(images.astype(np.float32), np.ones((3, h, w), np.float32),
                           np.stack([psf / psf.sum()] * 3).astype(np.float32))
    return obs, np.array([[24.0, 16.0], [24.0, 26.0]]), np.array([2e4, 3e3])


def test_shared_light_splits_the_overlap_and_sums_to_the_image():
    """The shares are non-negative, sum to the detection image wherever an isolated
    morphology reaches, and each source's share peaks at its own centre."""
    obs, centers, _ = _compact_beside_extended()
    detect = detection_image(obs).astype(np.float64)
    shares = shared_light(detect, centers.astype(int), threshold=0.5 * np.sqrt(3.0))
    assert shares.shape == (2,) + detect.shape
    assert np.all(shares >= 0)
    reached = shares.sum(0) > 0
    np.testing.assert_allclose(shares.sum(0)[reached], detect[reached], rtol=1e-12)
    for s, (cy, cx) in enumerate(centers.astype(int)):
        assert shares[s, cy, cx] > shares[1 - s, cy, cx]


def test_shared_initial_split_is_closer_to_the_true_fluxes():
    """The compact source is initialised first by the bright-first subtraction (its centre
    is brighter) and takes a ring of the extended neighbour's wing (+23% measured); the
    shared split gives both sources their flux within 10%."""
    obs, centers, true = _compact_beside_extended()
    errors = {}
    for share in (False, True):
        comps = init_components(obs, centers, init_share=share, **GREEDY)
        errors[share] = _init_fluxes(comps, 2).mean(1) / true - 1
    assert errors[False][1] > 0.15
    assert np.abs(errors[True]).max() < 0.1
    assert np.abs(errors[True]).max() < np.abs(errors[False]).max() / 2


def test_faint_sources_are_those_whose_centre_brighter_neighbours_dominate():
    """A source is faint when the isolated morphologies of the sources with more isolated
    flux make up more than ``1 - own`` of the detection image at its centre, or its
    centre is under ``PEAK_RATIO`` of an overlapping neighbour's; the brightest source
    never is, fainter ones do not count, and no light at the centre makes a source
    faint."""
    assert PEAK_RATIO == 0.1
    detect = np.zeros((10, 20))
    pix = np.array([[5, 5], [5, 9], [5, 15], [2, 2]])
    detect[5, 5], detect[5, 9], detect[5, 15], detect[2, 2] = 100.0, 10.0, 20.0, 0.0
    iso = np.zeros((4, 10, 20))
    iso[0, 1:9, 1:12] = 7.0  # the brightest: 7 of 10 at source 1's centre
    iso[1, 4:7, 8:11] = 3.0
    iso[2, 3:8, 13:18] = 8.0  # alone
    iso[2, 5, 9] = 2.0  # fainter than 0 but brighter than 1: 9 of 10 at 1's centre
    np.testing.assert_array_equal(faint_sources(iso, detect, pix, 0.5),
                                  [False, True, False, True])
    np.testing.assert_array_equal(faint_sources(iso, detect, pix, 0.05),
                                  [False, False, False, True])
    iso[2, 5, 9] = 0.0
    np.testing.assert_array_equal(faint_sources(iso, detect, pix, 0.35),
                                  [False, True, False, True])
    np.testing.assert_array_equal(faint_sources(iso, detect, pix, 0.25),
                                  [False, False, False, True])
    detect[5, 9] = 9.9  # under 10% of source 0's centre
    np.testing.assert_array_equal(faint_sources(iso, detect, pix, 0.25),
                                  [False, True, False, True])


def test_hybrid_split_shares_comparable_sources_and_subtracts_faint_ones():
    """``init_share_own``: the compact source beside the extended one (its own centre)
    shares the overlap as the proportional split does (both within 10%, where the
    bright-first subtraction gives the compact one +15% or more); the faint source on a
    bright wing (the wing is 72% of its centre) is initialised on the image minus the
    bright one's morphology, as the subtraction does (the same components)."""
    obs, centers, true = _compact_beside_extended()
    comps = init_components(obs, centers, **{**GREEDY, "init_share_own": 0.5})
    assert np.abs(_init_fluxes(comps, 2).mean(1) / true - 1).max() < 0.1
    obs, centers, true = _bright_and_faint()
    greedy = init_components(obs, centers, **GREEDY)
    hybrid = init_components(obs, centers, **{**GREEDY, "init_share_own": 0.5})
    assert [c.symmetric for c in hybrid] == [c.symmetric for c in greedy]
    np.testing.assert_allclose(_init_fluxes(hybrid, 2), _init_fluxes(greedy, 2), rtol=1e-3)
    assert np.abs(_init_fluxes(hybrid, 2) / true - 1).max() < 0.3


def test_host_symmetry_reflects_about_the_peak_at_the_centre():
    """The initialisation's symmetry (numpy, ``centre_quirk=False``) mirrors about the peak
    even at the centre of an even image, where the fit's (lite's) reflects about the half
    pixel; elsewhere the host and device versions agree."""
    x = np.random.default_rng(0).normal(size=(6, 8))
    out = uncentered_symmetry(x, (3, 4), xp=np, centre_quirk=False)
    expected = np.zeros_like(x)
    win = x[1:6, 1:8]
    expected[1:6, 1:8] = np.minimum(win, win[::-1, ::-1])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float64
    lite = uncentered_symmetry(x, (3, 4), xp=np)
    np.testing.assert_array_equal(lite, np.minimum(x, x[::-1, ::-1]))
    for center in [(1, 2), (4, 6), (2, 5)]:
        np.testing.assert_allclose(uncentered_symmetry(x, center, xp=np),
                                   np.asarray(uncentered_symmetry(x, center)), rtol=1e-6)


def _twins_on_a_wing():
    """A bright galaxy (flux 3e4, sigma 4) with two faint compact ones (600 each, sigma 1.3)
    6 px either side of it (3 bands, noise 1): the faint ones are shoulders on the bright
    wing, not peaks, and symmetric about the bright centre, so the bright source's
    symmetric, monotonic initial morphology holds both, and the bright-first split leaves
    the faint ones almost nothing at their centres."""
    h = w = 48
    yy, xx = np.mgrid[:h, :w]

    def gauss(cy, cx, s):
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        return g / g.sum()

    image = 3e4 * gauss(24, 24, 4.0) + 600 * gauss(24, 18, 1.3) + 600 * gauss(24, 30, 1.3)
    py, px = np.mgrid[-10:11, -10:11]
    psf = np.exp(-(py**2 + px**2) / (2 * 1.2**2))
    images = image + np.random.default_rng(3).normal(0, 1, (3, h, w))
    obs = make_observation(images.astype(np.float32), np.ones((3, h, w), np.float32),
                           np.stack([psf / psf.sum()] * 3).astype(np.float32))
    return obs, np.array([[24.0, 24.0], [24.0, 18.0], [24.0, 30.0]]), np.array([3e4, 600, 600])


def _source_fluxes(components, n_sources, n_bands):
    flux = np.zeros((n_sources, n_bands))
    for c in components:
        flux[c.source] += np.asarray(c.spectrum, np.float64) * float(np.sum(c.morph))
    return flux


def test_local_bump_removes_a_smooth_wing():
    """On a linear gradient plus a compact bump, the ring median is the gradient's level at
    the centre, so the bump left at the centre is the compact source's peak."""
    yy, xx = np.mgrid[:40, :40].astype(np.float64)
    peak = 50.0
    image = 200.0 + 3.0 * xx + peak * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 1.0**2))
    bump, level = local_bump(image, (20, 20), 4.0, 7.0)
    assert level == pytest.approx(260.0, abs=0.5)
    assert bump[20, 20] == pytest.approx(peak, abs=0.5)
    assert bump[20, 28] == 0.0  # outside the disc
    cube, levels = local_bump(np.stack([image, 2 * image]), (20, 20), 4.0, 7.0)
    np.testing.assert_allclose(cube[1], 2 * bump)
    np.testing.assert_allclose(levels, [level, 2 * level])


def test_bump_seed_brings_back_sources_the_split_leaves_nothing():
    """Two faint sources the bright-first split leaves (almost) nothing start from their
    local bump with ``init_bump_seed``: within a factor 2 of their true flux instead of
    under a fifth of it, and the joint refit keeps at least the given part of that start.
    The bright source is unchanged; scarlet lite's recipe has the option off."""
    obs, centers, true = _twins_on_a_wing()
    plain = _source_fluxes(init_components(obs, centers, **GREEDY), 3, 3)
    assert np.all(plain[1:] < 0.2 * true[1:, None])  # lost at initialisation
    seeded_comps = init_components(obs, centers, **SEED)
    seeded = _source_fluxes(seeded_comps, 3, 3)
    assert np.all(seeded[1:] > 0.5 * true[1:, None])
    assert np.all(seeded[1:] < 2.0 * true[1:, None])
    np.testing.assert_allclose(seeded[0], plain[0], rtol=0.1)
    faint = [c for c in seeded_comps if c.source > 0]
    assert len(faint) == 2 and all(c.morph.shape == obs.model_psf.shape for c in faint)
    unfit = init_components(obs, centers, **SEED, fit_spectra=False)
    start = np.array([c.spectrum for c in unfit if c.source > 0], np.float64)
    got = np.array([c.spectrum for c in faint], np.float64)
    assert np.all(got >= 0.5 * start * (1 - 1e-6)) and np.all(start > 0)
    assert LSST_PIPELINE["init_bump_seed"] == 0


def test_colour_difference_is_the_noise_weighted_angle():
    """0 for proportional spectra, 1 for orthogonal ones (or a zero spectrum), and the
    band weights 1 / rms^2 decide how much a band's mismatch counts."""
    rms = np.ones(3)
    assert colour_difference([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], rms) == pytest.approx(0.0)
    assert colour_difference([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], rms) == pytest.approx(1.0)
    assert colour_difference([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], rms) == 1.0
    b, lev = np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    assert colour_difference(b, lev, rms) == pytest.approx(0.5)
    # band 1 (the mismatch) ten times noisier: it hardly counts
    assert colour_difference(b, lev, np.array([1.0, 10.0, 1.0])) == pytest.approx(
        0.01 / 1.01)


def _gauss(shape, cy, cx, s):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
    return g / g.sum()


def _observation(images):
    py, px = np.mgrid[-10:11, -10:11]
    psf = np.exp(-(py**2 + px**2) / (2 * 1.2**2))
    noisy = images + np.random.default_rng(3).normal(0, 1, images.shape)
    n, h, w = images.shape
    return make_observation(noisy.astype(np.float32), np.ones((n, h, w), np.float32),
                            np.stack([psf / psf.sum()] * n).astype(np.float32))


def test_bump_colour_drops_a_wing_curvature_and_keeps_coloured_sources():
    """A catalogue centre 6 px out on a bright exponential galaxy's steep, convex wing
    (no source there): ``init_bump_seed`` alone seeds the wing's curvature (several times
    what the plain split gives), ``init_bump_colour`` sees the wing's own colour and does
    not. Two faint compact sources of another colour on a bright wing (the split leaves
    them little) are still seeded with the colour test, as without it."""
    shape = (48, 48)
    yy, xx = np.mgrid[:48, :48]
    expo = np.exp(-np.hypot(yy - 24, xx - 24) / 2.5)
    wing = 1e5 / 6 * np.array([1.0, 2.0, 3.0])[:, None, None] * (expo / expo.sum())
    obs, centers = _observation(wing), np.array([[24.0, 24.0], [24.0, 30.0]])
    plain = _source_fluxes(init_components(obs, centers, **GREEDY), 2, 3)[1]
    seeded = _source_fluxes(init_components(obs, centers, **SEED), 2, 3)[1]
    tested = _source_fluxes(init_components(obs, centers, **{**SEED, "init_bump_colour": 0.005}),
                            2, 3)[1]
    assert seeded.sum() > 3 * plain.sum()  # the curvature seeded without the test
    np.testing.assert_allclose(tested, plain, rtol=1e-5)

    bright, faint = np.array([0.5, 1.0, 1.5]), np.array([1.5, 1.0, 0.5])
    images = (3e4 * bright[:, None, None] * _gauss(shape, 24, 24, 4.0)
              + 600 * faint[:, None, None] * (_gauss(shape, 24, 18, 1.3)
                                              + _gauss(shape, 24, 30, 1.3)))
    obs = _observation(images)
    centers = np.array([[24.0, 24.0], [24.0, 18.0], [24.0, 30.0]])
    true = 600 * faint
    plain = _source_fluxes(init_components(obs, centers, **GREEDY), 3, 3)[1:]
    assert np.all(plain.sum(1) < 0.5 * true.sum())  # the split leaves them little
    kept = _source_fluxes(init_components(obs, centers, **{**SEED, "init_bump_colour": 0.005}),
                          3, 3)[1:]
    assert np.all(kept.sum(1) > 0.7 * true.sum()) and np.all(kept.sum(1) < 1.5 * true.sum())
    assert LSST_PIPELINE["init_bump_colour"] == 0


def test_symmetric_low_peak_marks_faint_sources_on_a_wing():
    """A compact source 12 px out on a bright galaxy's wing, its centre under a tenth of
    the galaxy's but mostly its own (not dominated): free without the option, symmetric
    with ``symmetric_low_peak``; the bright source stays free. 16 px out, where the
    galaxy's initial morphology does not reach, it stays free. Scarlet lite's recipe has
    the option off."""
    shape = (48, 48)
    flat = np.ones(3)[:, None, None]
    images = 3e4 * flat * _gauss(shape, 24, 20, 4.0) + 300 * flat * _gauss(shape, 24, 32, 1.5)
    obs, centers = _observation(images), np.array([[24.0, 20.0], [24.0, 32.0]])
    off = init_components(obs, centers, symmetric_low_peak=False)
    on = init_components(obs, centers, symmetric_low_peak=True)
    assert [c.symmetric for c in off if c.source == 1] == [False, False]
    assert [c.symmetric for c in on if c.source == 1] == [True, True]
    assert not any(c.symmetric for c in on if c.source == 0)
    assert not any(c.symmetric for c in init_components(
        obs, centers, symmetric_low_peak=True, symmetric_dominated=False))
    far = _observation(3e4 * flat * _gauss(shape, 24, 20, 4.0)
                       + 300 * flat * _gauss(shape, 24, 36, 1.5))
    far_centers = np.array([[24.0, 20.0], [24.0, 36.0]])
    assert not any(c.symmetric for c in init_components(far, far_centers,
                                                         symmetric_low_peak=True))
    assert LSST_PIPELINE["symmetric_low_peak"] is False
