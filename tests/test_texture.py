"""Tests for plateflow.features.texture (Haralick features, cp_measure as the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from plateflow.features import FAMILIES, feature_columns
from plateflow.features.registry import Images, Objects
from plateflow.features.texture import TEXTURE_FEATURES, texture

CHANNELS = ("DNA", "Mito")


@pytest.fixture(scope="module")
def scene():
    """Six objects (disks, a rectangle, a 1-pixel-wide line) and two smooth random channels."""
    rng = np.random.default_rng(1)
    shape = (96, 96)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for k, (cy, cx, r) in enumerate([(20, 20, 12), (20, 60, 9), (60, 25, 15), (70, 70, 6)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = k
    labels[40:52, 50:88] = 5
    labels[88, 5:40] = 6  # one row: no vertical or diagonal pair -> NaN
    image = ndimage.gaussian_filter(rng.random((2, *shape)), (0, 1.5, 1.5))
    image *= np.linspace(0.1, 1.0, shape[1])
    image /= image.max()
    image[1, labels == 4] = 0.5  # uniform object: one level
    return labels, image


def _oracle(labels, plane, scale, levels):
    measuretexture = pytest.importorskip("cp_measure.core.measuretexture")
    return measuretexture.get_texture(labels, plane, scale=scale, gray_levels=levels)


@pytest.mark.parametrize(("scales", "levels"), [([3], 256), ([1, 2], 8)])
def test_agrees_with_cp_measure(scene, scales, levels):
    labels, image = scene
    n = int(labels.max())
    ours = texture(Objects(labels, np.arange(1, n + 1)), Images(image, CHANNELS),
                   {"scales": scales, "gray_levels": levels})
    checked = 0
    for c, ch in enumerate(CHANNELS):
        for scale in scales:
            for name, ref in _oracle(labels, image[c], scale, levels).items():
                feature, s, d, lv = name.split("_")
                got = ours[f"{feature}_{ch}_{s}_{d}_{lv}"]
                ref = np.asarray(ref, dtype=np.float64)
                # 1e-4 relative; the absolute 1e-9 only matters for values that are rounding
                # noise around 0 (e.g. Correlation of nearly uncorrelated levels)
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-9, err_msg=name)
                checked += 1
    assert checked == len(CHANNELS) * len(scales) * 4 * 13
    assert np.isnan(ours[f"Contrast_DNA_{scales[0]}_00_{levels}"][5])  # the line: NaN


def test_columns_are_cellprofiler_names():
    cols = FAMILIES["Texture"].columns(["DNA"], {"scales": [3], "gray_levels": 256})
    assert len(cols) == 13 * 4
    assert cols[0] == "AngularSecondMoment_DNA_3_00_256"
    assert {c.split("_")[0] for c in cols} == set(TEXTURE_FEATURES)
    full = feature_columns(["DNA", "AGP"], params={"Texture": {"enabled": True}})
    assert "Nuclei_Texture_AngularSecondMoment_DNA_3_00_256" in full
    assert "Cells_Texture_Contrast_AGP_3_03_256" in full
    assert "Cytoplasm_Texture_InfoMeas2_DNA_3_02_256" in full
    assert FAMILIES["Texture"].defaults == {"scales": [3], "gray_levels": 256}
    assert "Nuclei_Texture_Contrast_DNA_3_00_256" in feature_columns(["DNA"])  # on by default


def test_objects_without_pixels_are_nan(scene):
    labels, image = scene
    numbers = np.array([1, 2, 9])  # 9 has no pixels; 3..6 are not rows
    out = texture(Objects(labels, numbers), Images(image, CHANNELS), {"scales": [3]})
    assert all(v.shape == (3,) for v in out.values())
    assert all(np.isnan(v[2]) for v in out.values())
    assert all(np.isfinite(v[:2]).all() for v in out.values())
    empty = texture(Objects(np.zeros_like(labels), np.array([1])), Images(image, CHANNELS), {})
    assert all(np.isnan(v).all() for v in empty.values())


def test_rows_follow_object_numbers(scene):
    labels, image = scene
    images = Images(image, CHANNELS)
    full = texture(Objects(labels, np.arange(1, 7)), images, {})
    part = texture(Objects(labels, np.array([3, 5])), images, {})
    for name, value in part.items():
        np.testing.assert_array_equal(value, full[name][[2, 4]])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="gray_levels"):
        FAMILIES["Texture"].columns(["DNA"], {"scales": [3], "gray_levels": 1})
    with pytest.raises(ValueError, match="scales"):
        FAMILIES["Texture"].columns(["DNA"], {"scales": [0], "gray_levels": 8})


@pytest.mark.parametrize("k", [5, 11])
def test_independent_matrix_has_zero_information_measures(k):
    """Rows of ``a a b b a a b b ...``: the horizontal scale-1 matrix is 1/4 in every cell, so
    HXY2 - HXY = 0 exactly; its rounding noise must not reach InfoMeas2 through the square root
    (cp_measure gives exactly 0 here)."""
    width = 4 * k + 1
    labels = np.zeros((12, width + 4), np.int32)
    labels[2:10, 2 : 2 + width] = 1
    image = np.zeros(labels.shape)
    image[2:10, 2 : 2 + width] = np.tile([0.3, 0.3, 0.7, 0.7], k + 1)[:width]
    ours = texture(Objects(labels, np.array([1])), Images(image[None], ("DNA",)),
                   {"scales": [1], "gray_levels": 8})
    for name, ref in _oracle(labels, image, 1, 8).items():
        feature, s, d, lv = name.split("_")
        np.testing.assert_allclose(ours[f"{feature}_DNA_{s}_{d}_{lv}"], ref, rtol=1e-4,
                                   atol=1e-12, err_msg=name)
    assert ours["InfoMeas2_DNA_1_00_8"][0] == 0.0
    assert ours["InfoMeas2_DNA_1_02_8"][0] > 0.9  # vertical: a-a and b-b only


def test_many_rows_use_wide_codes(scene):
    """From 2**15 rows on, the packed cell codes are int64: same values as cp_measure."""
    labels, image = scene
    offset = 2**15 + 10
    big = np.where(labels > 0, labels + offset, 0)
    numbers = np.arange(1, offset + 7)
    ours = texture(Objects(big, numbers), Images(image, CHANNELS), {"scales": [2], "gray_levels": 8})
    for c, ch in enumerate(CHANNELS):
        for name, ref in _oracle(labels, image[c], 2, 8).items():
            feature, s, d, lv = name.split("_")
            got = ours[f"{feature}_{ch}_{s}_{d}_{lv}"]
            assert np.isnan(got[:offset]).all()
            np.testing.assert_allclose(got[offset:], np.asarray(ref, dtype=np.float64),
                                       rtol=1e-4, atol=1e-9, err_msg=name)


def test_site_cache_is_shared_by_compartments(scene):
    """The quantised planes are computed once per site (``images.cache``) and reused."""
    labels, image = scene
    images = Images(image, CHANNELS)
    nuclei = Objects(np.where(labels == 3, 3, 0), np.arange(1, 7))
    cells = Objects(labels, np.arange(1, 7))
    first = texture(nuclei, images, {})
    cached = dict(images.cache)
    assert len(cached) == len(CHANNELS)
    again = texture(cells, images, {})
    assert all(images.cache[key] is value for key, value in cached.items())
    fresh = texture(cells, Images(image, CHANNELS), {})
    for name, value in again.items():
        np.testing.assert_array_equal(value, fresh[name])
    assert np.isfinite(first["Contrast_DNA_3_00_256"][2])
