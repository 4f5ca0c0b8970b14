"""Pictures: colour mapping and PNGs (Agg, no pyplot)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from scarlet_jax import display  # noqa: E402
from scarlet_jax.options import resolve_options  # noqa: E402
from scarlet_jax.pipeline import failed_result  # noqa: E402

MAX_ITER = 15


@pytest.fixture(scope="module")
def result(hsc):
    from scarlet_jax import deblend

    obs, centers = hsc
    return deblend(obs, centers, max_iter=MAX_ITER)


def _read_png(path):
    from matplotlib.image import imread

    return imread(path)


def _assert_picture(path, width=None, height=None):
    img = _read_png(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    if width is not None:
        assert img.shape[1] == width and img.shape[0] == height
    rgb = img[..., :3]
    assert rgb.std() > 0.05  # not blank
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 200  # real image content
    return img


@pytest.mark.parametrize("n_bands", [1, 2, 3, 4, 5, 7])
def test_channel_map(n_bands):
    m = display.channel_map(n_bands)
    assert m.shape == (3, n_bands) and (m >= 0).all()
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    if n_bands == 3:
        np.testing.assert_allclose(m, np.eye(3)[::-1])  # bluest band -> blue channel
    if n_bands >= 2:
        assert m[2, 0] > 0 and m[0, -1] > 0  # blue from the first, red from the last


def test_lupton_rgb(rng):
    images = rng.normal(size=(5, 20, 30)) * 0.1
    images[:, 10, 15] = [1.0, 2.0, 4.0, 8.0, 16.0]  # a red point
    rgb = display.lupton_rgb(images, stretch=0.5, q=8, minimum=0.0)
    assert rgb.shape == (20, 30, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert rgb[10, 15, 0] == rgb[10, 15].max() == 1.0  # saturated, keeps its colour
    assert rgb[10, 15, 0] > rgb[10, 15, 2]
    np.testing.assert_array_equal(display.lupton_rgb(np.zeros((3, 4, 4)), 1.0), 0)
    auto = display.lupton_rgb(images)
    assert auto.shape == rgb.shape and 0 < auto.mean() < 1
    grey = display.lupton_rgb(images[:1], 0.5)
    np.testing.assert_allclose(grey[..., 0], grey[..., 2])
    with pytest.raises(ValueError, match="stretch"):
        display.lupton_rgb(images, stretch=0.0)
    signed = display.signed_rgb(np.zeros((5, 4, 4)), 1.0)
    np.testing.assert_allclose(signed, 0.5)
    neg = display.signed_rgb(-np.ones((5, 4, 4)), 1.0)
    assert (neg < 0.5).all()


def test_plots_write_pngs(result, tmp_path):
    h, w = result.observation.shape[1:]
    p = display.plot_data_model_residual(result, tmp_path / "dmr.png")
    assert p == tmp_path / "dmr.png"
    img = _assert_picture(p)
    assert img.shape[1] == 1200  # three 4-inch panels at 100 dpi
    assert abs(img.shape[0] - round(100 * (4.0 * h / w + 1.0))) <= 1
    _assert_picture(display.plot_scene(result, tmp_path / "scene.png"), 600,
                    round(100 * (6.0 * h / w + 1.3)))
    _assert_picture(display.plot_sources(result, tmp_path / "sub" / "sources.png"))
    loss = _read_png(display.plot_loss(result, tmp_path / "loss.png"))
    assert loss.shape[:2] == (350, 500) and loss[..., :3].std() > 0.05


def test_plots_of_a_failed_result(result, tmp_path):
    failed = failed_result(result.observation, "no sources", resolve_options())
    for fn in (display.plot_data_model_residual, display.plot_scene, display.plot_sources,
               display.plot_loss):
        path = fn(failed, tmp_path / f"{fn.__name__}.png")
        assert path.stat().st_size > 1000


def test_channel_names():
    assert display.channel_names("grizy") == "R = z+y, G = r+i+z, B = g+r"
    assert display.channel_names(["g", "r", "i"]) == "R = i, G = r, B = g"
    assert display.channel_names(["x"]) == "R = x, G = x, B = x"


def _colourfulness(rgb):
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1)))


def test_default_stretch_shows_faint_sources_without_confetti(rng):
    """Pure noise in 5 bands plus a faint source (peak 4 sigma per band): the noise must
    come out dim and grey (no coloured confetti), the source brighter than the noise."""
    sigma = np.array([1.0, 0.8, 1.2, 1.5, 2.0])
    images = rng.normal(size=(5, 60, 60)) * sigma[:, None, None] + 10.0  # sky level 10
    yy, xx = np.mgrid[:60, :60]
    blob = np.exp(-((yy - 30) ** 2 + (xx - 30) ** 2) / (2 * 2.5**2))
    images += 4 * sigma[:, None, None] * blob * np.array([1, 1, 2, 3, 4])[:, None, None] / 2
    for scaling in (None, display.noise_scaling(images, sigma)):
        rgb = display.lupton_rgb(images, scaling=scaling)
        background = rgb[:15, :15]
        assert _colourfulness(background) < 0.02  # grey grain, not confetti
        assert background.mean() < 0.1  # the background is dark
        assert rgb[28:33, 28:33].mean() > 4 * background.mean()  # the source shows
        assert _colourfulness(rgb[28:33, 28:33]) > 2 * _colourfulness(background)


def test_pictures_shade_masked_pixels(result, tmp_path):
    weights = np.array(result.observation.weights)
    weights[:, 5:15, 5:25] = 0
    masked = dataclasses.replace(
        result, observation=dataclasses.replace(result.observation, weights=weights))
    for fn in (display.plot_data_model_residual, display.plot_scene):
        img = _read_png(fn(masked, tmp_path / "m.png"))[..., :3]
        magenta = (img[..., 0] > 0.45) & (img[..., 2] > 0.45) & (img[..., 1] < 0.2)
        img0 = _read_png(fn(result, tmp_path / "u.png"))[..., :3]
        magenta0 = (img0[..., 0] > 0.45) & (img0[..., 2] > 0.45) & (img0[..., 1] < 0.2)
        assert magenta.sum() > magenta0.sum() + 500, fn.__name__
