"""Reading blends from npz and FITS files: layouts, masks with plane names, bad files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from scarlet_jax.errors import BadInputError, InputWarning
from scarlet_jax.inputs import DEFAULT_BAD_PLANES, LSST_MASK_PLANES, read_blend, read_catalog

H, W = 24, 20


@pytest.fixture
def arrays(rng):
    psf = np.zeros((11, 11))
    psf[5, 5] = 1.0
    mask = np.zeros((3, H, W), np.int32)
    mask[:, :, :8] = 1 << LSST_MASK_PLANES["DETECTED"]
    mask[0, 2, 3] |= 1 << LSST_MASK_PLANES["SAT"]
    mask[1, 4, 5] |= 1 << LSST_MASK_PLANES["INTRP"]  # kept: not a default bad plane
    mask[2, 6, 7] |= 1 << LSST_MASK_PLANES["EDGE"]
    return dict(images=rng.normal(size=(3, H, W)), variance=np.ones((3, H, W)),
                psfs=np.stack([psf] * 3), mask=mask, bands=np.array(["g", "r", "i"]),
                centers=np.array([[10.0, 10.0]]))


def _bad_pixels(blend):
    return np.argwhere(np.asarray(blend.observation.weights) == 0).tolist()


def test_npz_bit_mask_without_plane_names_is_refused(arrays, tmp_path):
    path = tmp_path / "b.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInputError, match=r"b\.npz: the mask is an integer bit mask .*"
                       r"names no planes.*--bad-bits.*--mask-planes.*--no-mask"):
        read_blend(path)
    assert _bad_pixels(read_blend(path, bad_bits=[1, 4])) == [[0, 2, 3], [2, 6, 7]]
    assert _bad_pixels(read_blend(path, mask_planes=LSST_MASK_PLANES)) == [[0, 2, 3],
                                                                          [2, 6, 7]]
    assert _bad_pixels(read_blend(path, use_mask=False)) == []


def test_npz_mask_planes_apply_the_default_bad_planes(arrays, tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, **arrays, mask_planes=json.dumps(LSST_MASK_PLANES), unit="nJy")
    blend = read_blend(path)
    assert _bad_pixels(blend) == [[0, 2, 3], [2, 6, 7]]
    assert blend.unit == "nJy" and "SAT" in blend.mask and "default" in blend.mask
    assert set(DEFAULT_BAD_PLANES) == {"BAD", "CR", "NO_DATA", "SAT", "SUSPECT", "EDGE"}
    only_intrp = read_blend(path, bad_bits=["INTRP"])
    assert _bad_pixels(only_intrp) == [[1, 4, 5]]
    with pytest.raises(BadInputError, match="p.npz: .*unknown mask plane 'FOO'"):
        read_blend(path, bad_bits=["FOO"])


def test_fits_mask_planes_bands_unit_and_catalog(arrays, tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    from astropy.table import Table

    header = fits.Header()
    header["BANDS"] = "g,r,i"
    header["BUNIT"] = "nJy"
    mask_header = fits.Header()
    for name, bit in LSST_MASK_PLANES.items():
        mask_header[f"HIERARCH MP_{name}"] = bit  # as LSST writes them
    hdul = fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(arrays["images"], header=header, name="IMAGES"),
        fits.ImageHDU(arrays["variance"], name="VARIANCE"),
        fits.ImageHDU(arrays["psfs"], name="PSFS"),
        fits.ImageHDU(arrays["mask"], header=mask_header, name="MASK"),
        fits.table_to_hdu(Table({"y": [10.0], "x": [11.0], "symmetric": [True]})),
    ])
    hdul[-1].name = "CATALOG"
    path = tmp_path / "b.fits"
    hdul.writeto(path)
    blend = read_blend(path)
    assert blend.observation.bands == ("g", "r", "i") and blend.unit == "nJy"
    assert _bad_pixels(blend) == [[0, 2, 3], [2, 6, 7]]
    np.testing.assert_allclose(blend.centers, [[10.0, 11.0]])
    assert blend.symmetric.tolist() == [True]


def test_bad_files_are_named_errors(arrays, tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, **{k: v for k, v in arrays.items() if k != "mask"})
    raw = good.read_bytes()
    cases = {
        "trunc.npz": raw[: len(raw) // 2],
        "text.npz": b"hello",
        "empty.npz": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BadInputError, match=rf"^{tmp_path / name}: "):
            read_blend(tmp_path / name)
    np.savez(tmp_path / "nobands.npz", images=arrays["images"], variance=arrays["variance"],
             psfs=arrays["psfs"][:, :4, :4])
    with pytest.raises(BadInputError, match=r"nobands.npz: psfs .* sizes must be odd"):
        read_blend(tmp_path / "nobands.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        read_blend(tmp_path / "missing.npz")


def test_repairs_are_warned_with_the_file_name_once(arrays, tmp_path):
    arrays = {k: v for k, v in arrays.items() if k != "mask"}
    arrays["images"][1, 3, 4] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, **arrays)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_blend(path)
    texts = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(texts) == 1 and texts[0].startswith(f"{path}: images") and \
        texts[0].count("nan.npz") == 1


def test_catalog_symmetric_column(tmp_path):
    cat = tmp_path / "c.csv"
    cat.write_text("x,y,symmetric\n1,2,True\n3,4,0\n")
    np.testing.assert_allclose(read_catalog(cat), [[2, 1], [4, 3]])
    from scarlet_jax.inputs import _read_catalog

    assert _read_catalog(cat)[1].tolist() == [True, False]
    cat.write_text("x,y,symmetric\n1,2,maybe\n")
    with pytest.raises(BadInputError, match="symmetric"):
        read_catalog(cat)
