"""Correlation (and Neighbors) families against cp_measure (the oracle)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage.draw import disk

from plateflow.features.correlation import CORRELATION_DEFAULTS, correlation
from plateflow.features.neighbors import NEIGHBORS_DEFAULTS, NEIGHBORS_FEATURES, neighbors
from plateflow.features.registry import FAMILIES, Images, Objects

coloc = pytest.importorskip("cp_measure.core.measurecolocalization")
cp_neighbors = pytest.importorskip("cp_measure.multimask.measureobjectneighbors")
CHANNELS = ("DNA", "ER", "RNA")
NUMBERS = np.array([1, 2, 3, 4, 5, 6, 7, 9])  # 7 objects with pixels, 9 has none
SCALE = 65535


@pytest.fixture(scope="module")
def scene():
    labels = np.zeros((128, 144), dtype=np.int32)
    for k, (r, c, rad) in enumerate([(25, 25, 11), (35, 90, 15), (90, 40, 18),
                                     (100, 115, 13), (62, 70, 6)], 1):
        rr, cc = disk((r, c), rad, shape=labels.shape)
        labels[rr, cc] = k
    labels[5:7, 130:132] = 6  # 4 pixels
    labels[120:126, 120:130] = 7  # constant in every channel (set below)
    rng = np.random.default_rng(5)
    noise = ndi.gaussian_filter(rng.random((3, *labels.shape)), (0, 1.2, 1.2))
    shared = ndi.gaussian_filter(rng.random(labels.shape), 1.5)
    pixels = np.stack([0.6 * shared + 0.4 * noise[0], 0.3 * shared + 0.7 * noise[1],
                       0.8 * noise[2] - 0.3 * shared + 0.3])
    pixels += (labels > 0) * np.array([0.2, 0.1, 0.05])[:, None, None]
    pixels[:, labels == 7] = 0.25
    pixels = np.round(np.clip(pixels, 0, 1) * SCALE) / SCALE  # 16-bit grid
    return Objects(labels, NUMBERS), Images(pixels, CHANNELS)


def _oracle(x, y, labels):
    """cp_measure's per-object values for labels 1..7 (our rows 0..6), CellProfiler names."""
    ref = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.update(coloc.get_correlation_pearson(x, y, labels))
        ref.update(coloc.get_correlation_overlap(x, y, labels))
        ref.update(coloc.get_correlation_manders_fold(x, y, labels))
        ref.update(coloc.get_correlation_rwc(x, y, labels))
        ref.update(coloc.get_correlation_costes(x, y, labels, scale_max=SCALE))
    return ref


NAMES = {"Correlation_Pearson": "Correlation_{a}_{b}", "Correlation_Slope": "Slope_{a}_{b}",
         "Correlation_Overlap": "Overlap_{a}_{b}", "Correlation_K_1": "K_{a}_{b}",
         "Correlation_K_2": "K_{b}_{a}", "Correlation_Manders_1": "Manders_{a}_{b}",
         "Correlation_Manders_2": "Manders_{b}_{a}", "Correlation_RWC_1": "RWC_{a}_{b}",
         "Correlation_RWC_2": "RWC_{b}_{a}", "Correlation_Costes_1": "Costes_{a}_{b}",
         "Correlation_Costes_2": "Costes_{b}_{a}"}


def test_correlation_agrees_with_cp_measure(scene):
    objects, images = scene
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours warns about nothing
        ours = correlation(objects, images, {})
    assert list(ours) == FAMILIES["Correlation"].columns(CHANNELS, {})
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        a, b = CHANNELS[i], CHANNELS[j]
        ref = _oracle(images.pixels[i], images.pixels[j], objects.labels)
        assert set(ref) == set(NAMES)
        for key, name in NAMES.items():
            value = ours[name.format(a=a, b=b)]
            expected = np.asarray(ref[key], float)
            if key in ("Correlation_Pearson", "Correlation_Slope"):
                expected[6] = np.nan  # constant object: cp_measure gives rounding noise
            np.testing.assert_allclose(value[:7], expected, rtol=1e-4,
                                       atol=1e-9, equal_nan=True, err_msg=f"{name} {a} {b}")
            assert np.isnan(value[7])  # object 9 has no pixels
    # the costes search is defined (finite) on the textured objects, undefined on constant 7
    assert np.isfinite(ours["Costes_DNA_ER"][:4]).all()
    assert np.isnan(ours["Costes_DNA_ER"][6]) and np.isnan(ours["Correlation_DNA_ER"][6])


def test_correlation_names_and_options(scene):
    objects, images = scene
    columns = FAMILIES["Correlation"].columns
    assert FAMILIES["Correlation"].defaults == CORRELATION_DEFAULTS
    names = columns(("DNA", "ER"), {})
    assert names == ["Correlation_DNA_ER", "Slope_DNA_ER", "Overlap_DNA_ER", "K_DNA_ER",
                     "K_ER_DNA", "Manders_DNA_ER", "Manders_ER_DNA", "RWC_DNA_ER",
                     "RWC_ER_DNA", "Costes_DNA_ER", "Costes_ER_DNA"]
    assert len(columns(CHANNELS, {})) == 3 * 11
    no_slope = correlation(objects, images, {"slope": False})
    assert list(no_slope) == columns(CHANNELS, {"slope": False})
    assert not any(name.startswith("Slope_") for name in no_slope)
    # threshold 0 counts every pixel: Manders = 1 where both channels are positive
    full = correlation(objects, images, {"threshold": 0})
    np.testing.assert_allclose(full["Manders_DNA_ER"][:5], 1.0)


def test_correlation_without_objects():
    empty = Objects(np.zeros((16, 16), np.int32), np.array([3]))
    images = Images(np.random.default_rng(0).random((2, 16, 16)), ("DNA", "ER"))
    out = correlation(empty, images, {})
    assert list(out) == FAMILIES["Correlation"].columns(("DNA", "ER"), {})
    assert all(np.isnan(v).all() and v.shape == (1,) for v in out.values())


# ---------------------------------------------------------------------------------------------
# Neighbors
# ---------------------------------------------------------------------------------------------


def _disks(rng, shape, count, low, high, radius, *, min_pixels):
    """Up to ``count`` random disks (centre uniform in [low, high) per axis, radius uniform in
    ``radius``), each keeping only the pixels no earlier disk took, and kept when at least
    ``min_pixels`` are left. Returns the labels 1..k and k."""
    labels = np.zeros(shape, dtype=np.int32)
    k = 0
    for _ in range(count):
        r, c = rng.uniform(low, high)
        rr, cc = disk((r, c), rng.uniform(*radius), shape=shape)
        free = labels[rr, cc] == 0
        if free.sum() >= min_pixels:
            k += 1
            labels[rr[free], cc[free]] = k
    return labels, k


@pytest.fixture(scope="module")
def crowd():
    labels, k = _disks(np.random.default_rng(11), (160, 160), 40, (0, 0), (160, 160), (3, 10),
                       min_pixels=6)
    return labels, np.arange(1, k + 1)


@pytest.mark.parametrize(("method", "distance", "cp_method"), [
    ("Within", 5, "Within a specified distance"), ("Adjacent", 5, "Adjacent"),
    ("Within", 8, "Within a specified distance")])
def test_neighbors_agree_with_cp_measure(crowd, method, distance, cp_method):
    labels, numbers = crowd
    rows = np.append(numbers, numbers[-1] + 5)  # a last row with no pixels
    ours = neighbors(Objects(labels, rows), Images(np.zeros((1, *labels.shape)), ("DNA",)),
                     {"method": method, "distance": distance})
    scale = "Adjacent" if method == "Adjacent" else str(distance)
    assert list(ours) == [f"{f}_{scale}" for f in NEIGHBORS_FEATURES]
    ref = cp_neighbors.measureobjectneighbors(labels, labels, cp_method, distance)
    for feature in NEIGHBORS_FEATURES:
        value = ours[f"{feature}_{scale}"]
        assert np.isnan(value[-1])
        expected = np.asarray(ref[f"Neighbors_{feature}_{scale}"], float)
        if feature == "FirstClosestObjectNumber":  # cp_measure's first is the object itself
            expected = np.asarray(ref[f"Neighbors_SecondClosestObjectNumber_{scale}"], float)
        if feature == "SecondClosestObjectNumber":
            continue  # not given by cp_measure (see the module docstring); checked below
        np.testing.assert_allclose(value[:-1], expected, rtol=1e-4, atol=1e-9, err_msg=feature)
    assert ours[f"NumberOfNeighbors_{scale}"][:-1].max() > 0


def test_neighbors_hand_computed():
    labels = np.zeros((20, 40), dtype=np.int32)
    labels[5:10, 2:7] = 1  # 5x5 squares: 1 and 2 touch, 3 is 4 px right of 2, 4 far away
    labels[5:10, 7:12] = 2
    labels[5:10, 16:21] = 3
    labels[5:10, 34:39] = 4
    objects = Objects(labels, np.array([1, 2, 3, 4]))
    images = Images(np.zeros((1, 20, 40)), ("DNA",))
    adj = neighbors(objects, images, {"method": "Adjacent"})
    np.testing.assert_array_equal(adj["NumberOfNeighbors_Adjacent"], [1, 1, 0, 0])
    # 5 of object 1's 16 outline pixels touch object 2 (its right column, 1 px away)
    np.testing.assert_allclose(adj["PercentTouching_Adjacent"], [500 / 16, 500 / 16, 0, 0])
    within = neighbors(objects, images, {"method": "Within", "distance": 5})
    np.testing.assert_array_equal(within["NumberOfNeighbors_5"], [1, 2, 1, 0])
    np.testing.assert_array_equal(within["FirstClosestObjectNumber_5"], [2, 1, 2, 3])
    np.testing.assert_array_equal(within["SecondClosestObjectNumber_5"], [3, 3, 1, 2])
    np.testing.assert_allclose(within["FirstClosestDistance_5"], [5, 5, 9, 18])
    np.testing.assert_allclose(within["SecondClosestDistance_5"], [14, 9, 14, 27])
    np.testing.assert_allclose(within["AngleBetweenNeighbors_5"], [0, 180, 0, 0], atol=1e-6)
    grown = neighbors(objects, images, {"method": "Expanded"})
    np.testing.assert_array_equal(grown["NumberOfNeighbors_Expanded"], [1, 2, 2, 1])
    one = neighbors(Objects(labels * (labels == 4), np.array([4])), images, {})
    assert one["NumberOfNeighbors_5"][0] == 0
    assert one["PercentTouching_5"][0] == 0
    assert np.isnan(one["FirstClosestDistance_5"][0]) and np.isnan(one["AngleBetweenNeighbors_5"][0])


def test_neighbors_defaults():
    assert FAMILIES["Neighbors"].defaults == NEIGHBORS_DEFAULTS
    assert FAMILIES["Neighbors"].columns(("DNA",), {})[0] == "NumberOfNeighbors_5"
    with pytest.raises(ValueError, match="method"):
        FAMILIES["Neighbors"].columns(("DNA",), {"method": "Touching"})


@pytest.fixture(scope="module")
def hard_scene():
    """Anticorrelated and zero pixels, on the 16-bit grid (0) and in plain float64 (1)."""
    rng = np.random.default_rng(3)
    labels, k = _disks(rng, (120, 130), 22, (8, 8), (112, 122), (3, 11), min_pixels=4)
    base = ndi.gaussian_filter(rng.random(labels.shape), 1.5)
    noise = ndi.gaussian_filter(rng.random((3, *labels.shape)), (0, 1, 1))
    pixels = np.stack([0.5 + 2.0 * (base - base.mean()) + 0.3 * noise[0],
                       0.5 - 2.0 * (base - base.mean()) + 0.3 * noise[1],
                       0.9 * noise[2] + 0.3])
    pixels = np.clip(pixels, 0, 1)
    pixels[:, rng.random(labels.shape) < 0.05] = 0  # zero in both channels
    pixels[0, rng.random(labels.shape) < 0.05] = 0
    grid = np.round(pixels * SCALE) / SCALE
    return labels, np.arange(1, k + 1), (grid, pixels)


@pytest.mark.parametrize("variant", [0, 1])
def test_correlation_hard_cases_agree_with_cp_measure(hard_scene, variant):
    labels, numbers, variants = hard_scene
    pixels = variants[variant]
    images = Images(pixels, CHANNELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = correlation(Objects(labels, numbers), images, {})
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        a, b = CHANNELS[i], CHANNELS[j]
        ref = _oracle(pixels[i], pixels[j], labels)
        for key, name in NAMES.items():
            np.testing.assert_allclose(ours[name.format(a=a, b=b)], np.asarray(ref[key], float),
                                       rtol=1e-4, atol=1e-9, equal_nan=True,
                                       err_msg=f"{name} {a} {b}")
    # Costes searches objects with a negative slope (DNA, ER), some successfully, and with a
    # positive slope (DNA, RNA)
    from plateflow.features.correlation_costes import _regression
    from plateflow.features.correlation_pixels import ChannelPixels, PixelGroups, costes_key

    g = PixelGroups(Objects(labels, numbers))
    cx, cy, cz = (ChannelPixels(g, pixels[c], costes_key(pixels[c], SCALE), 0.15, variant == 0)
                  for c in (0, 1, 2))
    slope, _, ok = _regression(g, cx, cy, g.sum(cx.dx * cy.dx))
    assert np.isfinite(ours["Costes_DNA_ER"][ok & (slope < 0)]).sum() >= 3
    slope, _, ok = _regression(g, cx, cz, g.sum(cx.dx * cz.dx))
    assert np.isfinite(ours["Costes_DNA_RNA"][ok & (slope > 0)]).sum() >= 3


def test_correlation_without_packed_sort(scene, monkeypatch):
    """Where (row, key, index) would not fit 64 bits, an argsort gives the same values."""
    from plateflow.features.correlation_pixels import PixelGroups

    objects, images = scene
    expected = correlation(objects, images, {})
    packing = PixelGroups.packing

    def unpacked(self, key_bits):
        base, shift = packing(self, key_bits)
        return base >> np.uint64(shift), 0  # rows << key_bits, no index

    monkeypatch.setattr(PixelGroups, "packing", unpacked)
    ours = correlation(objects, images, {})
    for name, value in expected.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-12, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("method", ["Within", "Adjacent", "Expanded"])
def test_neighbors_many_labels_path(crowd, method, monkeypatch):
    """Above _MATRIX_LABELS labels, neighbour pairs are deduplicated by sorting: same values."""
    import plateflow.features.neighbors as module

    labels, numbers = crowd
    objects = Objects(labels, numbers)
    images = Images(np.zeros((1, *labels.shape)), ("DNA",))
    expected = neighbors(objects, images, {"method": method})
    monkeypatch.setattr(module, "_MATRIX_LABELS", 0)
    ours = neighbors(objects, images, {"method": method})
    for name, value in expected.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    assert np.nanmax(ours[next(iter(ours))]) > 0


def test_correlation_site_cache_is_shared_by_compartments(scene):
    """The per-site Costes grid in images.cache serves every compartment unchanged."""
    objects, images = scene
    inner = Objects(ndi.binary_erosion(objects.labels > 0, iterations=2) * objects.labels,
                    objects.numbers)
    shared = Images(images.pixels, images.channels)
    first, second = correlation(objects, shared, {}), correlation(inner, shared, {})
    assert shared.cache
    fresh = correlation(inner, Images(images.pixels, images.channels), {})
    for name in first:
        np.testing.assert_array_equal(second[name], fresh[name], err_msg=name)
