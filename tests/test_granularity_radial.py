"""Granularity and RadialDistribution families against cp_measure (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage.draw import disk

from plateflow.features.granularity import granularity
from plateflow.features.radial import _octagonal, radial_distribution
from plateflow.features.registry import FAMILIES, Images, Objects

cp_bulk = pytest.importorskip("cp_measure.bulk")
CHANNELS = ("DNA", "AGP")
NUMBERS = np.array([1, 2, 3, 4, 5, 7, 8, 9])  # 7 touches 3, ring 8 wraps 4, 9 has no pixels


@pytest.fixture(scope="module")
def scene():
    labels = np.zeros((160, 176), dtype=np.int32)
    for k, (r, c, rad) in enumerate([(30, 30, 12), (40, 100, 16), (105, 50, 20),
                                     (120, 135, 15), (80, 80, 6)], 1):
        rr, cc = disk((r, c), rad, shape=labels.shape)
        labels[rr, cc] = k
    labels[95:115, 68:78] = 7  # touches object 3; gap in the numbering
    rr, cc = np.indices(labels.shape)
    r2 = (rr - 120) ** 2 + (cc - 135) ** 2
    ring = (r2 > 15.5 ** 2) & (r2 <= 20 ** 2)
    labels[ring & (labels == 0)] = 8  # not star-shaped: radial needs propagate for it
    rng = np.random.default_rng(3)
    pixels = ndi.gaussian_filter(rng.random((2, *labels.shape)), (0, 1.5, 1.5))
    pixels += (labels > 0) * np.array([0.3, 0.1])[:, None, None]
    return Objects(labels, NUMBERS), Images(pixels, CHANNELS)


def _oracle(name, labels, plane, **kwargs):
    # cp_measure relabels 1..N in label order: rows 0..6 are objects 1, 2, 3, 4, 5, 7, 8
    return cp_bulk.get_core_measurements()[name](labels, plane, **kwargs)


def _assert_close(ours, ref):
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-9, equal_nan=True)


def test_granularity_agrees_with_cp_measure(scene):
    objects, images = scene
    ours = granularity(objects, images, {})
    assert list(ours) == FAMILIES["Granularity"].columns(CHANNELS, {})
    assert list(ours)[:2] == ["1_DNA", "2_DNA"] and list(ours)[-1] == "16_AGP"
    for c, ch in enumerate(CHANNELS):
        ref = _oracle("granularity", objects.labels, images.pixels[c])
        assert len(ref) == 16
        for k in range(1, 17):
            _assert_close(ours[f"{k}_{ch}"][:7], ref[f"Granularity_{k}"])
            assert np.isnan(ours[f"{k}_{ch}"][7])  # object 9 has no pixels


def test_granularity_cache_follows_the_image(scene):
    objects, images = scene
    first = granularity(objects, images, {})
    other = Images(images.pixels[::-1].copy(), CHANNELS)
    swapped = granularity(objects, other, {})
    _assert_close(swapped["3_DNA"], first["3_AGP"])
    short = granularity(objects, images, {"granular_spectrum_length": 3})
    assert list(short) == ["1_DNA", "2_DNA", "3_DNA", "1_AGP", "2_AGP", "3_AGP"]
    _assert_close(short["3_DNA"], first["3_DNA"])


@pytest.mark.parametrize("scaled", [True, False])
def test_radial_agrees_with_cp_measure(scene, scaled):
    objects, images = scene
    params = {"scaled": scaled, "maximum_radius": 12}
    ours = radial_distribution(objects, images, params)
    assert list(ours) == FAMILIES["RadialDistribution"].columns(CHANNELS, params)
    for c, ch in enumerate(CHANNELS):
        ref = _oracle("radial_distribution", objects.labels, images.pixels[c], **params)
        assert len(ref) == (12 if scaled else 15)
        for key, value in ref.items():
            _, feature, ring = key.split("_")  # RadialDistribution_FracAtD_1of4
            column = ours[f"{feature}_{ch}_{ring}"]
            _assert_close(column[:7], value)
            assert np.isnan(column[7])


def test_radial_closed_form_only_where_exact(scene):
    objects, _ = scene
    lab = objects.labels
    ci, cj = np.zeros(10, dtype=np.int64), np.zeros(10, dtype=np.int64)
    for k in range(1, 9):
        i, j = np.nonzero(lab == k)
        if i.size:
            ci[k], cj[k] = i[i.size // 2], j[i.size // 2]
    _, bad = _octagonal(lab, ci, cj)
    assert bad[8] and not bad[1]  # the ring needs propagate; a disk seen from inside does not


def test_radial_column_names():
    names = FAMILIES["RadialDistribution"].columns(("DNA",), {"bin_count": 4, "scaled": True})
    assert names[:4] == [f"FracAtD_DNA_{b}of4" for b in range(1, 5)]
    assert names[-1] == "RadialCV_DNA_4of4" and len(names) == 12


def test_empty_compartment_is_nan():
    objects = Objects(np.zeros((32, 32), dtype=np.int32), np.array([1, 2]))
    images = Images(np.zeros((2, 32, 32)), CHANNELS)
    for family in (granularity, radial_distribution):
        out = family(objects, images, {})
        assert all(v.shape == (2,) and np.isnan(v).all() for v in out.values())


@pytest.fixture(scope="module")
def edge_scene():
    """Touching objects on every border and corner, one across the whole image, a ring, an
    object in two pieces, and a label that is not a row."""
    rng = np.random.default_rng(7)
    shape = (96, 120)
    seeds = np.zeros(shape, dtype=np.int32)
    points = rng.integers(0, [96, 120], size=(14, 2))
    points[:4] = [[0, 0], [0, 119], [95, 0], [95, 119]]  # the corners
    seeds[points[:, 0], points[:, 1]] = np.arange(1, 15)
    # a crowded tessellation: nearest seed, cut back by a noisy foreground
    _, (ii, jj) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[ii, jj]
    labels[ndi.gaussian_filter(rng.random(shape), 2) < 0.47] = 0
    labels[40:44, :] = 15  # touches the left and right borders: measured in its own crop
    rr, cc = np.indices(shape)
    r2 = (rr - 70) ** 2 + (cc - 60) ** 2
    labels[(r2 > 6 ** 2) & (r2 <= 11 ** 2)] = 16  # a ring around a hole
    labels[(r2 <= 6 ** 2)] = 0
    labels[5:9, 50:54] = 17
    labels[20:24, 80:84] = 17  # one object in two pieces
    labels[85:90, 30:36] = 18  # not a row
    pixels = ndi.gaussian_filter(rng.random((2, *shape)), (0, 1.0, 1.0))
    numbers = np.arange(1, 18)
    return Objects(labels, numbers), Images(pixels, CHANNELS)


@pytest.mark.parametrize("scaled", [True, False])
def test_radial_on_borders_and_touching_objects(edge_scene, scaled):
    objects, images = edge_scene
    labels = np.where(objects.labels == 18, 0, objects.labels)  # the oracle: rows only
    params = {"scaled": scaled, "maximum_radius": 9, "bin_count": 3}
    ours = radial_distribution(objects, images, params)
    for c, ch in enumerate(CHANNELS):
        ref = _oracle("radial_distribution", labels, images.pixels[c], **params)
        for key, value in ref.items():
            _, feature, ring = key.split("_")
            column = ours[f"{feature}_{ch}_{ring}"]
            present = np.isin(objects.numbers, labels)
            _assert_close(column[present], value[objects.numbers[present] - 1])


def test_granularity_on_borders_and_touching_objects(edge_scene):
    objects, images = edge_scene
    labels = np.where(objects.labels == 18, 0, objects.labels)
    params = {"subsample_size": 0.5, "image_sample_size": 0.5, "element_size": 4,
              "granular_spectrum_length": 5}
    ours = granularity(objects, images, params)
    for c, ch in enumerate(CHANNELS):
        ref = _oracle("granularity", labels, images.pixels[c], **params)
        for k in range(1, 6):
            _assert_close(ours[f"{k}_{ch}"], ref[f"Granularity_{k}"])


def test_granularity_reuses_the_site_cache(scene):
    objects, images = scene
    site = Images(images.pixels.copy(), CHANNELS)
    first = granularity(objects, site, {})
    assert len(site.cache) == 1  # the reconstructions, computed once for the site
    (key, recs), = site.cache.items()
    again = granularity(objects, site, {})
    assert site.cache[key] is recs
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])


@pytest.mark.parametrize("levels", [40, None])
def test_rank_reconstruction_equals_scikit_image(levels):
    """Ranks with ties (radix-sorted) and with more than 65,536 distinct values."""
    from skimage.morphology import disk as sk_disk
    from skimage.morphology import reconstruction

    from plateflow.features.granularity_reconstruct import RankReconstructor, value_ranks

    rng = np.random.default_rng(5)
    if levels:
        mask = np.floor(rng.random((41, 57)) * levels) / levels  # many ties
    else:
        mask = rng.random((300, 260))
    ranks, values = value_ranks(mask)
    assert (values.size > 65_536) == (levels is None)
    rebuild = RankReconstructor(ranks, values.size)
    cross = sk_disk(1, dtype=bool)
    seed = ranks
    for _ in range(3):
        seed = ndi.grey_erosion(seed, footprint=cross, mode="reflect")
        ref = reconstruction(values[seed], mask, footprint=cross)
        np.testing.assert_array_equal(values[rebuild(seed)], ref)
