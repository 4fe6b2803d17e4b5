"""Intensity and Location families against cp_measure 0.3.0 (CellProfiler's
MeasureObjectIntensity, legacy ``n * q`` quantiles) on a hand-made scene."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from plateflow.features import FAMILIES
from plateflow.features.intensity import INTENSITY_FEATURES
from plateflow.features.intensity_stats import edge_mask
from plateflow.features.location import LOCATION_CHANNEL_FEATURES
from plateflow.features.registry import Images, Objects

CHANNELS = ("DNA", "Mito")
NUMBERS = np.arange(1, 12)  # 11 is absent from the labels: a row of NaN
CONSTANT, DARK, OTHER = 8, 8, 12  # 8: constant DNA, zero Mito; 12: not a row


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Labels (40, 48) and a 2-channel float32-exact image."""
    shape = (40, 48)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    labels[(yy - 10) ** 2 + (xx - 10) ** 2 <= 25] = 1  # disk r=5
    labels[3:9, 20:31] = 2  # rectangle
    labels[14, 18:33] = 3  # 1-pixel line
    labels[17, 5] = 4  # single pixel
    labels[20:30, 3:13] = 5
    labels[23:27, 6:10] = 0  # ... with a hole
    labels[0:6, 40:48] = 6  # touches the top and right image borders
    labels[35:40, 15:26] = 7  # touches the bottom border and object 8
    labels[35:40, 26:33] = CONSTANT  # touches the bottom border and object 7
    labels[(yy - 30) ** 2 + (xx - 38) ** 2 <= 9] = 9  # disk r=3
    labels[9:12, 20:31] = OTHER  # touches object 2; a label that is not a row
    labels[22:26, 20:24] = 10
    rng = np.random.default_rng(10)
    dna = np.round(rng.random(shape) * 50) / 50  # ties, also at the maximum
    dna[labels == CONSTANT] = 0.5
    mito = rng.random(shape)
    mito[labels == DARK] = 0  # integrated intensity 0: no centre of mass
    return labels, np.stack([dna, mito]).astype(np.float32).astype(np.float64)


def _variant(image: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    if kind == "float32":  # exact float32 values (corrected images): the key-sort path
        return image
    if kind == "negative":  # float32 with negative values and a -0.0 (zeros stay 0)
        out = np.where(image == 0, 0, image - 0.5).astype(np.float32).astype(np.float64)
        out[0, 10, 10] = -0.0
        return out
    # float64 values that are not float32 (the argsort path); object 8 stays constant
    noise = np.random.default_rng(1).random(image.shape) * 1e-6
    return image + np.where(labels == CONSTANT, 0, noise)


def _ours(labels: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    images = Images(image, CHANNELS)
    objects = Objects(labels, NUMBERS)
    out = dict(FAMILIES["Location"].measure(objects, images, {}))
    out.update(FAMILIES["Intensity"].measure(objects, images, {}))
    return out


def test_exact_columns():
    intensity = FAMILIES["Intensity"].columns(CHANNELS, {})
    location = FAMILIES["Location"].columns(CHANNELS, {})
    assert intensity == [
        f"{feature}_{ch}"
        for feature in (
            "IntegratedIntensity", "MeanIntensity", "StdIntensity", "MinIntensity",
            "MaxIntensity", "MedianIntensity", "LowerQuartileIntensity",
            "UpperQuartileIntensity", "MADIntensity", "IntegratedIntensityEdge",
            "MeanIntensityEdge", "StdIntensityEdge", "MinIntensityEdge", "MaxIntensityEdge",
            "MassDisplacement",
        )
        for ch in CHANNELS
    ]  # fmt: skip
    assert location == ["Center_X", "Center_Y", "Center_Z"] + [
        f"{feature}_{ch}"
        for feature in (
            "CenterMassIntensity_X", "CenterMassIntensity_Y", "CenterMassIntensity_Z",
            "MaxIntensity_X", "MaxIntensity_Y", "MaxIntensity_Z",
        )
        for ch in CHANNELS
    ]  # fmt: skip
    labels, image = _scene()
    assert list(FAMILIES["Intensity"].measure(Objects(labels, NUMBERS),
                                              Images(image, CHANNELS), {})) == intensity
    assert list(FAMILIES["Location"].measure(Objects(labels, NUMBERS),
                                             Images(image, CHANNELS), {})) == location


@pytest.mark.parametrize("kind", ["float32", "negative", "float64"])
def test_every_column_matches_cp_measure(kind):
    bulk = pytest.importorskip("cp_measure.bulk")
    labels, image = _scene()
    image = _variant(image, labels, kind)
    ours = _ours(labels, image)
    present = np.unique(labels[labels > 0])  # cp_measure's rows, in this order
    is_row = np.isin(present, NUMBERS)
    rows = present[is_row] - 1
    measure = bulk.get_core_measurements(legacy=True)["intensity"]
    for c, ch in enumerate(CHANNELS):
        theirs = measure(labels, image[c])
        # the same measurements, under CellProfiler's names
        assert {k for k in theirs if k.startswith("Intensity_")} == {
            f"Intensity_{f}" for f in INTENSITY_FEATURES}
        assert {k for k in theirs if k.startswith("Location_")} == {
            f"Location_{f}" for f in LOCATION_CHANNEL_FEATURES}
        for key, value in theirs.items():
            name = f"{key.split('_', 1)[1]}_{ch}"
            np.testing.assert_allclose(ours[name][rows], value[is_row], rtol=1e-9, atol=1e-10,
                                       err_msg=f"{kind} {name}")
            assert np.isnan(ours[name][10]), name  # object 11 has no pixels
    # the cases the scene is for
    assert np.isnan(ours["CenterMassIntensity_X_Mito"][DARK - 1])
    assert ours["MaxIntensity_X_DNA"][CONSTANT - 1] == 26  # first of equal maxima
    assert ours["MaxIntensity_Y_DNA"][CONSTANT - 1] == 35
    assert ours["StdIntensity_DNA"][CONSTANT - 1] == 0
    assert ours["CenterMassIntensity_Z_DNA"][0] == ours["MaxIntensity_Z_DNA"][0] == 0


def test_center_is_the_centroid_and_ignores_intensity():
    labels, image = _scene()
    ours = _ours(labels, image)
    for number in NUMBERS[:-1]:
        yy, xx = np.nonzero(labels == number)
        assert ours["Center_X"][number - 1] == pytest.approx(xx.mean(), abs=1e-12)
        assert ours["Center_Y"][number - 1] == pytest.approx(yy.mean(), abs=1e-12)
        assert ours["Center_Z"][number - 1] == 0  # a 2-D image, as CellProfiler writes it
    assert np.isnan(ours["Center_X"][10]) and np.isnan(ours["Center_Z"][10])


def test_edge_pixels_are_find_boundaries_inner():
    labels, _ = _scene()
    assert np.array_equal(edge_mask(labels), find_boundaries(labels, mode="inner"))
    # image-border pixels are edges only next to another label: object 6 touches two borders
    edge = edge_mask(labels)
    assert not edge[0, 44] and not edge[2, 47] and edge[2, 40] and edge[5, 44]
    rng = np.random.default_rng(3)
    random = rng.integers(0, 4, (30, 31))
    assert np.array_equal(edge_mask(random), find_boundaries(random, mode="inner"))


def test_families_share_work_in_any_order():
    """Whichever family or compartment comes first, each gets the values of a fresh run."""
    labels, image = _scene()
    other = np.where(labels == 5, 0, labels)
    fresh = {}
    for name, lab in (("a", labels), ("b", other)):
        for family in ("Location", "Intensity"):
            fresh[name, family] = FAMILIES[family].measure(
                Objects(lab, NUMBERS), Images(image, CHANNELS), {})
    images = Images(image, CHANNELS)
    for family in ("Intensity", "Location"):  # family-major, as a benchmark loops
        for name, lab in (("b", other), ("a", labels.copy())):
            got = FAMILIES[family].measure(Objects(lab, NUMBERS), images, {})
            for column, value in fresh[name, family].items():
                np.testing.assert_array_equal(got[column], value, err_msg=column)


def test_no_objects_give_nan():
    labels, image = _scene()
    empty = np.zeros_like(labels)
    ours = _ours(empty, image)
    assert all(np.isnan(value).all() and value.shape == (NUMBERS.size,)
               for value in ours.values())
