"""Tests of scarlet_jax.prox: scarlet lite's reference vectors, a sequential numpy oracle of
lite's monotonicity, and properties (monotone, idempotent, bounded, symmetric)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REFERENCE
from hypothesis import given, settings
from hypothesis import strategies as st

from scarlet_jax import monotonicity, prox

OPERATORS = REFERENCE / "operators.npz"
WRAPS = [pytest.param(lambda f: f, id="eager"), pytest.param(jax.jit, id="jit")]


# ---------------------------------------------------------------------------------------------
# oracles (plain numpy, written from SCARLET_LITE.md (a), (b))


def oracle_peak(image, center, radius=1):
    """lite's get_peak: argmax of the clipped window, first in row-major order."""
    cy, cx = (int(np.round(c)) for c in center)
    y0, x0 = max(cy - radius, 0), max(cx - radius, 0)
    window = image[y0 : cy + radius + 1, x0 : cx + radius + 1]
    iy, ix = np.unravel_index(np.argmax(window), window.shape)
    return y0 + iy, x0 + ix


def oracle_monotonicity(image, peak, acc=np.float32):
    """Sequential Gauss-Seidel pass of lite's weighted monotonicity about ``peak``."""
    h, w = image.shape
    yy, xx = np.mgrid[:h, :w]
    dy, dx = yy - peak[0], xx - peak[1]
    weights = monotonicity.monotonicity_weights(dy, dx).astype(acc)  # (9, h, w)
    x = np.pad(image.astype(acc), 1)
    for flat in np.argsort(dy**2 + dx**2, axis=None, kind="stable"):
        y, xp = divmod(int(flat), w)
        total = acc(0)
        for k in range(9):
            total = acc(total + weights[k, y, xp] * x[y + k // 3, xp + k % 3])
        x[y + 1, xp + 1] = min(x[y + 1, xp + 1], total)
    return x[1:-1, 1:-1]


def oracle_symmetry(image, center, fill=0.0):
    """lite's prox_uncentered_symmetry by slicing, as described in SCARLET_LITE.md (b)."""
    h, w = image.shape
    if tuple(center) == (h // 2, w // 2):
        return np.minimum(image, image[::-1, ::-1])
    out = np.full_like(image, fill)
    slices = []
    for p, n in zip(center, (h, w), strict=True):
        d = int(np.round(2 * (p - n // 2))) + (n % 2 == 0)
        slices.append(slice(d, None) if d >= 0 else slice(None, d))
    sub = image[tuple(slices)]
    out[tuple(slices)] = np.minimum(sub, sub[::-1, ::-1])
    return out


def galaxy(rng, shape, peak, noise=0.05, sigma=None):
    """A noisy elliptical Gaussian (h, w) float32 centred on ``peak``."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    sigma = sigma or rng.uniform(1.0, max(h, w) / 4)
    q = rng.uniform(0.4, 1.0)
    img = np.exp(-0.5 * ((yy - peak[0]) ** 2 + (q * (xx - peak[1])) ** 2) / sigma**2)
    return (img + noise * rng.normal(size=shape)).astype(np.float32)


def monotone_violation(out, peak):
    """max over pixels of out_p - sum_k w_k out_{p+k} (off-image reads 0); <= 0 if monotone."""
    h, w = out.shape
    yy, xx = np.mgrid[:h, :w]
    weights = monotonicity.monotonicity_weights(yy - peak[0], xx - peak[1])
    padded = np.pad(np.asarray(out, np.float64), 1)
    total = sum(weights[k] * padded[k // 3 : k // 3 + h, k % 3 : k % 3 + w] for k in range(9))
    gap = np.asarray(out, np.float64) - total
    gap[peak[0], peak[1]] = -np.inf
    return gap.max()


# ---------------------------------------------------------------------------------------------
# scarlet lite's reference vectors


@pytest.fixture(scope="module")
def operators(require_file):
    require_file(OPERATORS)
    with np.load(OPERATORS) as f:
        data = {k: f[k] for k in f.files}
    return [
        {
            "input": data[f"mono_{n}_input"],
            "center": data[f"mono_{n}_center"].astype(np.int32),
            "peak": data[f"mono_{n}_peak"],
            "mono": data[f"mono_{n}_output"],
            "sym": data[f"sym_{n}_output"],
        }
        for n in range(int(data["count"]))
    ]


def by_shape(cases):
    groups = {}
    for case in cases:
        groups.setdefault(case["input"].shape, []).append(case)
    return groups


def cases_for(operators, wrap):
    """Every case under jit; one per input shape eagerly (op-by-op dispatch is slow, and
    the eager run checks the same arithmetic)."""
    if wrap is jax.jit:
        return list(enumerate(operators))
    first = {}
    for n, case in enumerate(operators):
        first.setdefault(case["input"].shape, (n, case))
    return list(first.values())


def test_reference_count(operators):
    assert len(operators) == 24


@pytest.mark.parametrize("wrap", WRAPS)
def test_monotonicity_reference(operators, wrap):
    mono = wrap(lambda x, c: monotonicity.monotonicity(x, c, return_peak=True))
    for n, case in cases_for(operators, wrap):
        out, peak = mono(case["input"], case["center"])
        assert out.dtype == jnp.float32
        np.testing.assert_array_equal(peak, case["peak"], err_msg=f"case {n}")
        np.testing.assert_allclose(out, case["mono"], rtol=0, atol=1e-5, err_msg=f"case {n}")


@pytest.mark.parametrize("wrap", WRAPS)
def test_symmetry_reference(operators, wrap):
    sym = wrap(functools.partial(prox.uncentered_symmetry, fill=0.0))
    for n, case in cases_for(operators, wrap):
        out = sym(case["input"], case["center"])
        np.testing.assert_allclose(out, case["sym"], rtol=0, atol=1e-6, err_msg=f"case {n}")


def test_find_peak_reference(operators):
    find = jax.jit(prox.find_peak)
    for case in operators:
        np.testing.assert_array_equal(find(case["input"], case["center"]), case["peak"])


def test_reference_vmapped(operators):
    """A stack of same-shape cases through jax.vmap (the batched custom_vmap path)."""
    mono = jax.jit(jax.vmap(lambda x, c: monotonicity.monotonicity(x, c, return_peak=True)))
    sym = jax.jit(jax.vmap(prox.uncentered_symmetry))
    for shape, cases in by_shape(operators).items():
        images = np.stack([c["input"] for c in cases])
        centers = np.stack([c["center"] for c in cases])
        out, peaks = mono(images, centers)
        np.testing.assert_array_equal(peaks, np.stack([c["peak"] for c in cases]))
        np.testing.assert_allclose(
            out, np.stack([c["mono"] for c in cases]), atol=1e-5, err_msg=f"{shape}"
        )
        np.testing.assert_allclose(
            sym(images, centers), np.stack([c["sym"] for c in cases]), atol=1e-6, err_msg=f"{shape}"
        )


def test_oracle_matches_reference(operators):
    """The numpy oracle used by the property tests is itself lite's algorithm."""
    for case in operators[::5]:
        out = oracle_monotonicity(case["input"], case["peak"])
        np.testing.assert_allclose(out, case["mono"], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(oracle_symmetry(case["input"], case["center"]), case["sym"])


# ---------------------------------------------------------------------------------------------
# monotonicity: oracle and properties


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(15, 15), (13, 20), (10, 7)])
def test_monotonicity_matches_oracle(seed, shape):
    rng = np.random.default_rng(seed)
    center = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
    image = galaxy(rng, shape, center, noise=0.3)
    out, peak = monotonicity.monotonicity(image, center, return_peak=True)
    assert tuple(np.asarray(peak)) == oracle_peak(image, center)
    np.testing.assert_allclose(out, oracle_monotonicity(image, tuple(np.asarray(peak))), atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_monotonicity_properties(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (21, 17)
    center = (10 + int(rng.integers(-3, 4)), 8 + int(rng.integers(-3, 4)))
    image = galaxy(rng, shape, center, noise=0.2)
    mono = jax.jit(lambda x, c: monotonicity.monotonicity(x, c, return_peak=True))
    out, peak = mono(image, center)
    out, peak = np.asarray(out), tuple(np.asarray(peak))
    assert monotone_violation(out, peak) <= 1e-6
    assert np.all(out <= image)
    assert out[peak] == image[peak]  # the peak never changes
    # idempotent (the peak value is positive, so the re-found peak is the same)
    again, peak2 = mono(out, center)
    assert tuple(np.asarray(peak2)) == peak
    np.testing.assert_allclose(again, out, rtol=0, atol=1e-6)
    # non-negative in, non-negative out
    positive = np.abs(image)
    assert np.all(np.asarray(mono(positive, center)[0]) >= 0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", [(15, 15), (21, 17), (24, 30), (41, 41)])
def test_make_monotonicity_matches_general(seed, shape):
    """The box-centred factory equals the general operator for peaks near the box centre."""
    rng = np.random.default_rng(seed)
    mono = monotonicity.make_monotonicity(shape, fit_radius=1, return_peak=True)
    box_centre = (shape[0] // 2, shape[1] // 2)
    for offset in [(0, 0), (1, -1), (-1, 0), (1, 1)]:
        peak = (box_centre[0] + offset[0], box_centre[1] + offset[1])
        image = galaxy(rng, shape, peak, noise=0.1)
        image[peak] = image.max() + 0.5  # make the re-found peak the intended one
        out, found = mono(image, np.array(box_centre, np.int32))
        ref, ref_peak = monotonicity.monotonicity(image, box_centre, return_peak=True)
        np.testing.assert_array_equal(found, peak)
        np.testing.assert_array_equal(ref_peak, peak)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)


def test_make_monotonicity_vmap_variants():
    """vmap over components, over (blends, components), with an unbatched centre, and jit."""
    rng = np.random.default_rng(7)
    shape = (15, 15)
    mono = monotonicity.make_monotonicity(shape)
    images = np.stack(
        [galaxy(rng, shape, (7 + rng.integers(-1, 2), 7 + rng.integers(-1, 2))) for _ in range(6)]
    ).reshape(2, 3, *shape)
    centers = np.full((2, 3, 2), 7, np.int32)
    loop = np.stack([[mono(images[i, j], centers[i, j]) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(jax.vmap(mono)(images[0], centers[0]), loop[0], atol=1e-7)
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.vmap(mono)))(images, centers), loop, atol=1e-7)
    np.testing.assert_allclose(
        jax.vmap(mono, in_axes=(0, None))(images[1], centers[0, 0]), loop[1], atol=1e-7
    )
    np.testing.assert_allclose(
        jax.vmap(jax.vmap(mono, in_axes=(0, None)), in_axes=(0, None))(images, centers[0, 0]),
        loop,
        atol=1e-7,
    )
    # a batched centre with one morph broadcast to every centre
    out = jax.vmap(mono, in_axes=(None, 0))(images[0, 0], centers[0])
    np.testing.assert_allclose(out, np.broadcast_to(loop[0, 0], out.shape), atol=1e-7)


def test_make_monotonicity_classes_equals_one_scan_per_shape():
    """Size classes of different shapes in one scan (schedules of different lengths):
    each stack comes out as :func:`make_monotonicity` of its own shape gives it, also under
    a vmap over blends (the lane axis)."""
    rng = np.random.default_rng(11)
    shapes = [(7, 7), (13, 9), (17, 21)]
    mono = monotonicity.make_monotonicity_classes(shapes, fit_radius=1)
    stacks, centers, loops = [], [], []
    for k, shape in zip((3, 2, 1), shapes, strict=True):
        c = (shape[0] // 2, shape[1] // 2)
        imgs = np.stack([galaxy(rng, shape, (c[0] + rng.integers(-1, 2),
                                             c[1] + rng.integers(-1, 2)), noise=0.1)
                         for _ in range(2 * k)]).reshape(2, k, *shape)
        cen = np.broadcast_to(np.array(c, np.int32), (2, k, 2))
        one = monotonicity.make_monotonicity(shape, fit_radius=1, return_peak=True)
        loops.append(jax.vmap(jax.vmap(one))(imgs, cen))
        stacks.append(imgs)
        centers.append(cen)
    outs, peaks = mono(tuple(s[0] for s in stacks), tuple(c[0] for c in centers))
    for c, (out, peak) in enumerate(loops):
        np.testing.assert_array_equal(outs[c], out[0])
        np.testing.assert_array_equal(peaks[c], peak[0])
    outs, peaks = jax.jit(jax.vmap(mono))(tuple(stacks), tuple(centers))
    for c, (out, peak) in enumerate(loops):
        np.testing.assert_array_equal(outs[c], out)
        np.testing.assert_array_equal(peaks[c], peak)


def test_make_monotonicity_clips_far_peaks():
    """A peak beyond max_offset is clipped: monotone about the clipped peak."""
    rng = np.random.default_rng(3)
    shape = (15, 15)
    image = galaxy(rng, shape, (3, 12))
    mono = monotonicity.make_monotonicity(shape, fit_radius=1, return_peak=True)
    out, peak = mono(image, np.array([3, 12], np.int32))
    np.testing.assert_array_equal(peak, [6, 8])
    np.testing.assert_allclose(out, oracle_monotonicity(image, (6, 8)), atol=1e-6)


def test_monotonicity_no_retrace_for_new_centres():
    traces = []

    @jax.jit
    def run(x, c):
        traces.append(1)
        return monotonicity.monotonicity(x, c)

    image = galaxy(np.random.default_rng(0), (12, 12), (5, 5))
    for c in [(5, 5), (2, 9), (11, 0)]:
        run(image, np.array(c, np.int32)).block_until_ready()
    assert len(traces) == 1


def test_monotonicity_dtypes(x64):
    rng = np.random.default_rng(5)
    image = galaxy(rng, (11, 13), (4, 7)).astype(np.float64)
    out, peak = monotonicity.monotonicity(image, (4, 7), return_peak=True)
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(
        out, oracle_monotonicity(image, tuple(np.asarray(peak)), acc=np.float64), rtol=0, atol=1e-12
    )


def test_monotonicity_integer_input():
    image = np.zeros((7, 7), np.int32)
    image[3, 3], image[0, 0] = 5, 9
    out = monotonicity.monotonicity(image, (3, 3))
    assert out.dtype == jnp.float32
    assert out[0, 0] <= 5 and out[3, 3] == 5


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (2, 2), (5, 1)])
def test_monotonicity_tiny_shapes(shape):
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    image = rng.normal(size=shape).astype(np.float32)
    for center in [(0, 0), (shape[0] - 1, shape[1] - 1)]:
        out, peak = monotonicity.monotonicity(image, center, return_peak=True)
        peak = tuple(int(p) for p in np.asarray(peak))
        assert peak == oracle_peak(image, center)
        np.testing.assert_allclose(out, oracle_monotonicity(image, peak), atol=1e-6)
    box = monotonicity.make_monotonicity(shape)(image, np.array([shape[0] // 2, shape[1] // 2]))
    assert box.shape == shape


@pytest.mark.parametrize(
    "shape, margin, spread",
    [((41, 41), (1, 1), False), ((12, 31), (0, 2), False), ((7, 3), (7, 3), False),
     ((21, 17), (1, 1), True)],
)
def test_monotonicity_schedule_tables(shape, margin, spread):
    """Every grid pixel has one state row, reads only rows written before its step, and reads
    exactly its in-grid neighbours with lite's nonzero weights; also for a schedule spread
    over more steps with fewer pixels each (a shorter class in a longer scan)."""
    t = monotonicity._mono_tables(shape, margin)
    if spread:
        n_steps = t.reads.shape[0] + 15
        t = monotonicity._tables_within(shape, margin, n_steps)
        assert t.reads.shape[0] <= n_steps
        assert t.reads.shape[1] < monotonicity._mono_tables(shape, margin).reads.shape[1]
    gh, gw = t.grid_shape
    n_steps, capacity, _ = t.reads.shape
    assert sorted(set(t.row_of.tolist())) == sorted(t.row_of.tolist())  # one row each
    assert np.all(t.source[t.row_of] == np.arange(gh * gw) + 1)  # rows hold their pixels
    gcy, gcx = shape[0] // 2 + margin[0], shape[1] // 2 + margin[1]
    offsets = np.mgrid[:gh, :gw] - np.array([gcy, gcx])[:, None, None]
    weights = monotonicity.monotonicity_weights(*offsets)
    for s in range(n_steps):
        first = 2 + s * capacity
        assert np.all(t.reads[s] < first)  # only earlier steps, the peak or the zero row
        for c in range(capacity):
            if t.source[first + c] == 0 or t.row_of[t.source[first + c] - 1] != first + c:
                continue  # an unused slot
            y, x = t.coords[s, :, c]
            expect = {}
            for k in range(9):
                qy, qx = y + k // 3 - 1, x + k % 3 - 1
                if k != 4 and weights[k, y, x] > 0 and 0 <= qy < gh and 0 <= qx < gw:
                    expect[int(t.row_of[qy * gw + qx])] = weights[k, y, x]
            used = t.weights[s, c] > 0
            rows, wts = t.reads[s, c][used].tolist(), t.weights[s, c][used].tolist()
            got = dict(zip(rows, wts, strict=True))
            assert got == pytest.approx(expect, rel=0, abs=0)


def test_make_monotonicity_rejects_bad_input():
    with pytest.raises(ValueError, match="box_shape"):
        monotonicity.make_monotonicity((0, 5))
    with pytest.raises(ValueError, match="fit_radius"):
        monotonicity.make_monotonicity((5, 5), fit_radius=-1)
    with pytest.raises(ValueError, match="does not match"):
        monotonicity.make_monotonicity((5, 5))(np.zeros((7, 7), np.float32), np.array([3, 3]))


@settings(max_examples=15, deadline=None)
@given(
    shape=st.sampled_from([(7, 7), (9, 6), (5, 12)]),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_monotonicity_hypothesis(shape, seed, data):
    rng = np.random.default_rng(seed)
    center = (data.draw(st.integers(0, shape[0] - 1)), data.draw(st.integers(0, shape[1] - 1)))
    image = (rng.normal(size=shape) + 0.5).astype(np.float32)
    out, peak = monotonicity.monotonicity(image, center, return_peak=True)
    peak = tuple(int(p) for p in np.asarray(peak))
    assert peak == oracle_peak(image, center)
    np.testing.assert_allclose(out, oracle_monotonicity(image, peak), rtol=0, atol=1e-6)
    assert np.all(np.asarray(out) <= image)
    assert monotone_violation(np.asarray(out), peak) <= 1e-6


# ---------------------------------------------------------------------------------------------
# find_peak


@pytest.mark.parametrize("wrap", WRAPS)
def test_find_peak_edges_and_ties(wrap):
    find = wrap(prox.find_peak)
    rng = np.random.default_rng(11)
    image = rng.normal(size=(6, 8)).astype(np.float32)
    for center in [(0, 0), (5, 7), (0, 7), (3, 4), (-1, 3), (6, 8)]:
        np.testing.assert_array_equal(find(image, np.array(center)), oracle_peak(image, center))
    flat = np.zeros((6, 8), np.float32)  # ties: the first pixel of the window, row-major
    np.testing.assert_array_equal(find(flat, np.array([3, 4])), [2, 3])
    np.testing.assert_array_equal(prox.find_peak(flat, np.array([3.4, 4.6])), [2, 4])
    np.testing.assert_array_equal(prox.find_peak(image, np.array([20, 20])), [5, 7])
    big = prox.find_peak(image, np.array([3, 4]), fit_radius=10)
    np.testing.assert_array_equal(big, np.unravel_index(np.argmax(image), image.shape))


def test_find_peak_vmapped():
    rng = np.random.default_rng(2)
    images = rng.normal(size=(5, 9, 9)).astype(np.float32)
    centers = rng.integers(0, 9, size=(5, 2)).astype(np.int32)
    peaks = jax.vmap(prox.find_peak)(images, centers)
    for i in range(5):
        np.testing.assert_array_equal(peaks[i], oracle_peak(images[i], centers[i]))


# ---------------------------------------------------------------------------------------------
# symmetry


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("shape", [(9, 9), (10, 8), (9, 12), (1, 5)])
def test_symmetry_matches_oracle_and_is_symmetric(wrap, shape):
    rng = np.random.default_rng(sum(shape))
    sym = wrap(prox.uncentered_symmetry)
    image = rng.normal(size=shape).astype(np.float32)
    h, w = shape
    centers = [(h // 2, w // 2), (0, 0), (h - 1, w - 1), (h // 2, 0), (h // 3, w - 2)]
    for center in centers:
        out = np.asarray(sym(image, np.array(center)))
        np.testing.assert_array_equal(out, oracle_symmetry(image, center), err_msg=f"{center}")
        assert np.all(out <= np.maximum(image, 0))
        if (h % 2 and w % 2) or center != (h // 2, w // 2):  # lite's even-size quirk aside
            # exactly symmetric about the peak inside the region, 0 outside
            ys, xs = np.nonzero(np.ones(shape, bool))
            py, px = 2 * center[0] - ys, 2 * center[1] - xs
            inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
            np.testing.assert_array_equal(out[ys[inside], xs[inside]], out[py[inside], px[inside]])
            np.testing.assert_array_equal(out[ys[~inside], xs[~inside]], 0)
        np.testing.assert_array_equal(sym(out, np.array(center)), out)  # idempotent


def test_symmetry_even_centre_quirk_and_fill_none():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = prox.uncentered_symmetry(image, (2, 2))  # the array centre: a flip of the whole array
    np.testing.assert_array_equal(out, np.minimum(image, image[::-1, ::-1]))
    kept = prox.uncentered_symmetry(image, (0, 1), fill=None)
    ref = oracle_symmetry(image, (0, 1), fill=-1.0)
    np.testing.assert_array_equal(np.asarray(kept)[ref != -1], ref[ref != -1])
    np.testing.assert_array_equal(np.asarray(kept)[ref == -1], image[ref == -1])


def test_symmetry_vmapped_traced_centres():
    rng = np.random.default_rng(4)
    images = rng.normal(size=(6, 11, 10)).astype(np.float32)
    centers = np.stack([rng.integers(0, 11, 6), rng.integers(0, 10, 6)], -1).astype(np.int32)
    out = jax.jit(jax.vmap(prox.uncentered_symmetry))(images, centers)
    for i in range(6):
        np.testing.assert_array_equal(out[i], oracle_symmetry(images[i], tuple(centers[i])))


# ---------------------------------------------------------------------------------------------
# thresholds


@pytest.fixture
def threshold_inputs(rng):
    morph = rng.normal(size=(9, 11)).astype(np.float32)
    spectrum = rng.uniform(0.5, 2.0, size=5).astype(np.float32)
    bg_rms = rng.uniform(0.05, 0.2, size=5).astype(np.float32)
    return morph, spectrum, bg_rms


def test_sparsity_threshold_definition(threshold_inputs):
    _, spectrum, bg_rms = threshold_inputs
    t = prox.sparsity_threshold(spectrum, bg_rms, 3.0)
    expected = 3.0 / np.sqrt(np.sum((spectrum.astype(np.float64) / bg_rms) ** 2))
    np.testing.assert_allclose(t, expected, rtol=1e-6)
    # the model of a pixel at the threshold has S/N = thresh summed over bands
    snr = np.sqrt(np.sum((spectrum * float(t) / bg_rms) ** 2))
    np.testing.assert_allclose(snr, 3.0, rtol=1e-5)
    assert prox.sparsity_threshold(spectrum, bg_rms, 0.0) == 0
    assert np.isinf(prox.sparsity_threshold(np.zeros(5, np.float32), bg_rms, 1.0))


@pytest.mark.parametrize("wrap", WRAPS)
def test_l0_l1_thresholds(wrap, threshold_inputs):
    morph, spectrum, bg_rms = threshold_inputs
    thresh = 40.0
    t = float(prox.sparsity_threshold(spectrum, bg_rms, thresh))
    assert 0.05 < t < 2  # some pixels either side
    l0 = np.asarray(wrap(prox.l0_threshold)(morph, spectrum, bg_rms, thresh))
    keep = np.abs(morph) >= t
    assert 0 < keep.sum() < keep.size
    np.testing.assert_array_equal(l0, np.where(keep, morph, 0))
    l1 = np.asarray(wrap(prox.l1_threshold)(morph, spectrum, bg_rms, thresh))
    np.testing.assert_allclose(l1, np.sign(morph) * np.maximum(np.abs(morph) - t, 0), atol=1e-6)
    # prox of t|z|: optimality, |z - m| <= t everywhere
    assert np.all(np.abs(l1 - morph) <= t + 1e-6)
    # idempotent for L0; bright and faint components are treated alike (scale by 2: exact)
    np.testing.assert_array_equal(prox.l0_threshold(l0, spectrum, bg_rms, thresh), l0)
    np.testing.assert_array_equal(
        np.asarray(prox.l0_threshold(morph / 2, spectrum * 2, bg_rms, thresh)) * 2, l0
    )
    np.testing.assert_array_equal(prox.l0_threshold(morph, spectrum, bg_rms, 0.0), morph)


def test_bg_threshold(threshold_inputs):
    morph, spectrum, bg_rms = threshold_inputs
    for bg_thresh in (0.0, 0.25, 1.0, 5.0):
        out = np.asarray(jax.jit(prox.bg_threshold)(morph, spectrum, bg_rms, bg_thresh))
        model = spectrum[:, None, None] * morph[None]
        below = np.all(model < (bg_rms * np.float32(bg_thresh))[:, None, None], axis=0)
        np.testing.assert_array_equal(out, np.where(below, 0, morph))
        np.testing.assert_array_equal(
            prox.bg_significant(morph, spectrum, bg_rms, bg_thresh), ~below
        )
    # bg_thresh 0: exactly the pixels with a negative model in every band go
    np.testing.assert_array_equal(
        prox.bg_threshold(morph, spectrum, bg_rms, 0.0), np.where(morph < 0, 0, morph)
    )
    # vmapped over components
    morphs = np.stack([morph, -morph])
    spectra = np.stack([spectrum, spectrum])
    out = jax.vmap(prox.bg_threshold, in_axes=(0, 0, None, None))(morphs, spectra, bg_rms, 1.0)
    np.testing.assert_array_equal(out[1], prox.bg_threshold(-morph, spectrum, bg_rms, 1.0))


def test_small_projections():
    morph = np.array([[0.5, -1.0], [np.nan, 2.0]], np.float32)
    np.testing.assert_array_equal(prox.positivity(np.nan_to_num(morph)), [[0.5, 0], [0, 2]])
    np.testing.assert_array_equal(prox.max_normalize(morph), [[0.25, -0.5], [0, 1]])
    zeros = np.zeros((3, 3), np.float32)
    np.testing.assert_array_equal(prox.max_normalize(zeros), zeros)
    floored = prox.peak_floor(zeros, np.array([1, 2]), 1e-3)
    assert floored[1, 2] == np.float32(1e-3) and float(jnp.sum(floored)) == np.float32(1e-3)
    np.testing.assert_array_equal(prox.peak_floor(np.ones((3, 3)), (1, 1), 1e-3), np.ones((3, 3)))
