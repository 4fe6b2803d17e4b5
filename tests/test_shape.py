"""AreaShape family against cp_measure 0.3.0 (the oracle): every column, on odd shapes and a
crowded synthetic scene."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, ellipse, line
from skimage.segmentation import expand_labels

from plateflow.features.registry import FAMILIES, Images, Objects
from plateflow.features.shape import DEFAULTS, SHAPE_FEATURES, area_shape, shape_columns

cp_shape = pytest.importorskip("cp_measure.core.measureobjectsizeshape")
IMAGES = Images(np.zeros((1, 1, 1)), ("DNA",))

BASIC = [
    "Area", "Perimeter", "FormFactor", "Compactness", "Eccentricity", "Solidity", "Extent",
    "MajorAxisLength", "MinorAxisLength", "Orientation", "EquivalentDiameter", "EulerNumber",
    "BoundingBoxArea", "ConvexArea", "BoundingBoxMinimum_X", "BoundingBoxMaximum_X",
    "BoundingBoxMinimum_Y", "BoundingBoxMaximum_Y", "Center_X", "Center_Y", "MaximumRadius",
    "MeanRadius", "MedianRadius", "MinFeretDiameter", "MaxFeretDiameter",
]  # fmt: skip
ADVANCED = (
    [f"SpatialMoment_{p}_{q}" for p in range(3) for q in range(4)]
    + [f"CentralMoment_{p}_{q}" for p in range(3) for q in range(4)]
    + [f"NormalizedMoment_{p}_{q}" for p in range(4) for q in range(4)]
    + [f"HuMoment_{k}" for k in range(7)]
    + ["InertiaTensor_0_0", "InertiaTensor_0_1", "InertiaTensor_1_0", "InertiaTensor_1_1",
       "InertiaTensorEigenvalues_0", "InertiaTensorEigenvalues_1"]
)
ZERNIKE = [
    "Zernike_0_0", "Zernike_1_1", "Zernike_2_0", "Zernike_2_2", "Zernike_3_1", "Zernike_3_3",
    "Zernike_4_0", "Zernike_4_2", "Zernike_4_4", "Zernike_5_1", "Zernike_5_3", "Zernike_5_5",
    "Zernike_6_0", "Zernike_6_2", "Zernike_6_4", "Zernike_6_6", "Zernike_7_1", "Zernike_7_3",
    "Zernike_7_5", "Zernike_7_7", "Zernike_8_0", "Zernike_8_2", "Zernike_8_4", "Zernike_8_6",
    "Zernike_8_8", "Zernike_9_1", "Zernike_9_3", "Zernike_9_5", "Zernike_9_7", "Zernike_9_9",
]  # fmt: skip


def _odd_shapes() -> np.ndarray:
    """One label per odd shape, labels 1..N."""
    lab = np.zeros((90, 120), np.int32)
    shapes = []
    add = shapes.append  # a mask's np.nonzero, (rows, cols) or a pair of slices

    add(disk((20, 20), 10, shape=lab.shape))  # 1 disk
    add(disk((15, 50), 2.5, shape=lab.shape))  # 2 small disk
    add((slice(5, 13), slice(60, 75)))  # 3 rectangle
    add((np.full(12, 20), np.arange(80, 92)))  # 4 horizontal 1-pixel line
    add((np.arange(30, 39), np.full(9, 100)))  # 5 vertical line
    add(line(40, 5, 49, 14))  # 6 diagonal line
    add((np.array([60]), np.array([60])))  # 7 single pixel
    add((np.array([64, 64]), np.array([60, 61])))  # 8 two pixels
    ell = np.zeros(lab.shape, bool)  # 9 L-shape
    ell[50:70, 20:25] = True
    ell[65:70, 20:40] = True
    add(np.nonzero(ell))
    rr, cc = np.indices(lab.shape)  # 10 ring (one hole)
    r2 = (rr - 45) ** 2 + (cc - 65) ** 2
    add(np.nonzero((r2 <= 11**2) & (r2 > 5**2)))
    add(disk((0, 119), 9, shape=lab.shape))  # 11 corner: touches two borders
    add((slice(75, 90), slice(95, 103)))  # 12 touches the bottom border
    add((slice(75, 90), slice(103, 110)))  # 13 touches 12
    add(ellipse(78, 60, 6, 14, rotation=0.6, shape=lab.shape))  # 14 rotated ellipse
    sq = np.zeros(lab.shape, bool)  # 15 plus sign: mu20 == mu02, mu11 == 0
    sq[30:45, 40:43] = True
    sq[36:39, 34:49] = True
    add(np.nonzero(sq))
    diag = np.zeros(lab.shape, bool)  # 16 equal variances, mu11 > 0: the +-45 tie
    diag[52:56, 100:104] = True
    diag[56, 104] = diag[51, 99] = True
    add(np.nonzero(diag))
    c_shape = np.zeros(lab.shape, bool)  # 17 a C: concave
    c_shape[30:50, 107:118] = True
    c_shape[34:46, 111:118] = False
    add(np.nonzero(c_shape))
    apart = np.zeros(lab.shape, bool)  # 18 one label, two pieces
    apart[2:5, 30:33] = apart[8:10, 38:41] = True
    add(np.nonzero(apart))
    for k, where in enumerate(shapes, 1):
        lab[where] = k
    return lab


def _crowd(seed: int = 0, size: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nuclei, touching cells grown from them, and cytoplasm rings: labels 1..N."""
    rng = np.random.default_rng(seed)
    nuclei = np.zeros((size, size), np.int32)
    k = 0
    for _ in range(200):
        r, c = rng.uniform(-4, size + 4, 2)
        a, b = rng.uniform(3, 8, 2)
        rr, cc = ellipse(r, c, a, b, rotation=rng.uniform(0, np.pi), shape=nuclei.shape)
        if rr.size and not nuclei[rr, cc].any():
            k += 1
            nuclei[rr, cc] = k
    cells = expand_labels(nuclei, 9)
    wobble = rng.random(cells.shape) < 0.08  # ragged outlines, some pixels lost
    cells[wobble & (nuclei == 0)] = 0
    cytoplasm = np.where(nuclei > 0, 0, cells)
    return nuclei, cells, cytoplasm


def _oracle(labels: np.ndarray, degree: int = 9) -> dict[str, np.ndarray]:
    """cp_measure 0.3.0's CellProfiler set (labels must be 1..N)."""
    ref = dict(cp_shape.get_sizeshape(labels, None, calculate_advanced=True,
                                      new_features=False))
    ref.update(cp_shape.get_feret(labels, None))
    ref.update(cp_shape.get_zernike(labels, None, zernike_numbers=degree))
    return ref


def _tolerance(name: str, ref: dict) -> np.ndarray | float:
    """Absolute tolerance per object: values that are 0 up to rounding (odd moments of a
    symmetric object) are compared on the object's own scale."""
    area = ref["Area"]
    if name.startswith(("CentralMoment", "SpatialMoment")):
        p, q = map(int, name.split("_")[1:])
        radius = np.sqrt((ref["CentralMoment_2_0"] + ref["CentralMoment_0_2"]) / area) + 1
        return 1e-9 * area * radius ** (p + q)
    return 1e-9


def _assert_agrees(ours: dict, ref: dict, rows: np.ndarray | slice = slice(None)) -> None:
    assert set(ref) <= set(ours)
    for name, expected in ref.items():
        expected = np.asarray(expected, np.float64)
        if name == "FormFactor":  # cp_measure divides by a zero perimeter: inf; ours NaN
            expected = np.where(np.isinf(expected), np.nan, expected)
        got = ours[name][rows]
        if name == "Orientation":  # an axis: +90 == -90, and none for a round ellipse
            got = expected + (got - expected + 90) % 180 - 90
            round_ = np.isclose(ref["MajorAxisLength"], ref["MinorAxisLength"], rtol=1e-9)
            got = np.where(round_, expected, got)
        close = np.abs(got - expected) <= _tolerance(name, ref) + 1e-4 * np.abs(expected)
        close |= np.isnan(got) & np.isnan(expected)
        assert close.all(), (name, np.flatnonzero(~close), got[~close], expected[~close])


def test_columns_are_cellprofilers_in_a_fixed_order():
    assert list(SHAPE_FEATURES) == BASIC + ADVANCED + ZERNIKE
    assert len(SHAPE_FEATURES) == 108
    assert FAMILIES["AreaShape"].columns(("DNA",), DEFAULTS) == BASIC + ADVANCED + ZERNIKE
    assert FAMILIES["AreaShape"].defaults == {"advanced": True, "zernike": True,
                                              "zernike_degree": 9}
    assert shape_columns((), {"advanced": False, "zernike": False}) == BASIC
    assert shape_columns((), {"zernike_degree": 2}) == BASIC + ADVANCED + ZERNIKE[:4]
    # exactly cp_measure's (= CellProfiler's) names, less its two non-CellProfiler extras
    lab = _odd_shapes()
    assert set(_oracle(lab)) == set(SHAPE_FEATURES)
    assert set(cp_shape.get_sizeshape(lab, None)) - set(SHAPE_FEATURES) == {
        "FilledArea", "PerimeterCrofton"}


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64])
def test_odd_shapes_agree_with_cp_measure(dtype):
    lab = _odd_shapes()
    n = int(lab.max())
    ours = area_shape(Objects(lab.astype(dtype), np.arange(1, n + 1)), IMAGES, {})
    assert list(ours) == list(SHAPE_FEATURES)
    _assert_agrees(ours, _oracle(lab))
    # a few values by hand
    assert ours["Area"][6] == 1 and np.isnan(ours["FormFactor"][6])  # one pixel
    assert ours["Compactness"][6] == 0  # CellProfiler: Perimeter**2 / max(4 pi A, 1)
    assert np.isnan(ours["Zernike_0_0"][6])  # enclosing circle of radius 0
    assert ours["EulerNumber"][9] == 0  # the ring
    assert ours["MaxFeretDiameter"][3] == 11 and ours["MinFeretDiameter"][3] == 0  # a line
    assert ours["Solidity"][2] == 1 and ours["Extent"][2] == 1  # rectangle
    assert (ours["BoundingBoxMinimum_X"][2], ours["BoundingBoxMaximum_X"][2]) == (60, 75)
    assert ours["Orientation"][14] == -45  # symmetric plus sign: cp_measure's fallback
    assert ours["Orientation"][15] == 45  # mu20 == mu02, mu11 > 0 (CellProfiler 4.0.6: -45)
    assert ours["MaximumRadius"][3] == ours["MedianRadius"][3] == 1  # a line
    assert ours["MaximumRadius"][10] < ours["MaximumRadius"][0]  # the border cuts the disk


@pytest.mark.parametrize("seed", [0, 1])
def test_crowded_scene_agrees_with_cp_measure(seed):
    for labels in _crowd(seed):
        labels = np.asarray(labels)
        n = int(labels.max())
        ours = area_shape(Objects(labels, np.arange(1, n + 1)), IMAGES, {})
        _assert_agrees(ours, _oracle(labels))


def test_rows_follow_the_numbers_and_missing_objects_are_nan():
    _, cells, _ = _crowd(2, size=100)
    n = int(cells.max())
    numbers = np.array([*range(1, n + 1), n + 5])  # the last number has no pixels
    gapped = np.where(cells > 0, cells + (cells > 3), 0)  # label 4 unused from here on
    numbers_gapped = np.where(numbers > 3, numbers + 1, numbers)
    ours = area_shape(Objects(gapped, numbers_gapped), IMAGES, {})
    _assert_agrees(ours, _oracle(cells), slice(0, n))
    assert all(np.isnan(values[n]) for values in ours.values())
    # a label that is not a row counts as another object (outside), as in cp_measure
    some = Objects(cells, np.arange(1, n + 1, 2))
    partial = area_shape(some, IMAGES, {})
    for name in ("Area", "Perimeter", "MaximumRadius", "MedianRadius", "Zernike_4_2"):
        np.testing.assert_allclose(partial[name], ours[name][0:n:2], rtol=1e-12)


def test_options_and_empty_compartment():
    nuclei = _crowd(3, size=80)[0]
    n = int(nuclei.max())
    objects = Objects(nuclei, np.arange(1, n + 1))
    small = area_shape(objects, IMAGES, {"advanced": False, "zernike_degree": 4})
    assert list(small) == BASIC + [z for z in ZERNIKE if int(z.split("_")[1]) <= 4]
    _assert_agrees(small, {k: v for k, v in _oracle(nuclei, degree=4).items() if k in small})
    basic = area_shape(objects, IMAGES, {"zernike": False, "advanced": False})
    assert list(basic) == BASIC
    empty = area_shape(Objects(np.zeros_like(nuclei), np.arange(1, 4)), IMAGES, {})
    assert list(empty) == list(SHAPE_FEATURES)
    assert all(np.isnan(v).all() and v.shape == (3,) for v in empty.values())
