"""Granularity: CellProfiler MeasureGranularity, a spectrum of sizes per channel.

As cp_measure 0.3 (``core/measuregranularity.get_granularity``) computes it, per channel:

1. subsample the image by ``subsample_size`` (bilinear, ``map_coordinates`` order 1);
2. remove the background: subsample again by ``image_sample_size``, grey opening with a disk of
   radius ``element_size``, bilinear back to the subsampled grid, subtract, clip at 0;
3. ``granular_spectrum_length`` times: erode with the 3x3 cross and reconstruct (by dilation)
   under the background-free image; restore each reconstruction to the original grid
   (bilinear) and take each object's mean there.

``Granularity_<k>_<Channel>`` = 100 * (mean_{k-1} - mean_k) / mean_0, where mean_0 is the
object's mean of the *raw* image (clipped below at machine epsilon) and mean_k that of the
k-th reconstruction. CellProfiler itself measures one spectrum per image and then per object;
we follow cp_measure's per-object result (the same numbers cp_measure gives).

The spectrum steps depend only on the image, not on the objects, so the reconstructions are
computed once per site and reused by every compartment (``images.cache``, one per site: the
pixels must not be modified in place between compartments). They run on the value ranks of the
background-free image (:mod:`~plateflow.features.granularity_reconstruct`), exactly as
scikit-image's reconstruction orders its pixels, so the values are the same.
"Restore then per-object mean" is linear in the reconstruction, so it is one sparse operator
per compartment, applied to all steps and channels in one product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
from skimage.morphology import disk

from plateflow.features.granularity_reconstruct import RankReconstructor, value_ranks
from plateflow.features.registry import Images, Objects, register_family

__all__ = ["GRANULARITY_DEFAULTS", "granularity"]

#: Options of ``features.Granularity`` (CellProfiler's and cp_measure's defaults).
GRANULARITY_DEFAULTS = {
    "subsample_size": 0.25,
    "image_sample_size": 0.25,
    "element_size": 10,
    "granular_spectrum_length": 16,
}


def _columns(channels: Sequence[str], params: Mapping) -> list[str]:
    n = int(params.get("granular_spectrum_length", 16))
    return [f"{k}_{ch}" for ch in channels for k in range(1, n + 1)]


def _grid(shape_to, scale):
    """Coordinates ``map_coordinates`` samples to shrink by ``scale`` (cp_measure's grid)."""
    i, j = np.mgrid[0:shape_to[0], 0:shape_to[1]].astype(float)
    return i / scale, j / scale


def _subsampled_shape(shape: tuple[int, int], subsample: float) -> np.ndarray:
    shape = np.array(shape)
    return (shape * subsample).astype(int) if subsample < 1 else shape


def _spectrum_images(plane: np.ndarray, p: Mapping) -> np.ndarray:
    """(K, y*x): the K reconstructions of one channel on the subsampled grid."""
    sub, back, radius = p["subsample_size"], p["image_sample_size"], int(p["element_size"])
    new_shape = _subsampled_shape(plane.shape, sub)
    pixels = (ndi.map_coordinates(plane, _grid(new_shape, sub), order=1) if sub < 1
              else plane.astype(float, copy=True))
    # background: open a (further subsampled) copy with a disk, bring it back, subtract
    if back < 1:
        back_shape = new_shape * back
        small = ndi.map_coordinates(pixels, _grid(np.ceil(back_shape).astype(int), back),
                                    order=1)
    else:
        back_shape, small = new_shape, pixels
    foot = disk(radius, dtype=bool)
    small = ndi.grey_dilation(ndi.grey_erosion(small, footprint=foot, mode="reflect"),
                              footprint=foot, mode="reflect")
    if back < 1:
        i, j = np.mgrid[0:new_shape[0], 0:new_shape[1]].astype(float)
        i *= (back_shape[0] - 1) / (new_shape[0] - 1)
        j *= (back_shape[1] - 1) / (new_shape[1] - 1)
        small = ndi.map_coordinates(small, (i, j), order=1)
    pixels = np.maximum(pixels - small, 0)
    # the spectrum, on the value ranks of the background-free image (erosion keeps values)
    ranks, values = value_ranks(pixels)
    rebuild = RankReconstructor(ranks, values.size)
    out = np.empty((int(p["granular_spectrum_length"]), pixels.size))
    ero = ranks
    for k in range(out.shape[0]):
        ero = _erode_cross(ero)
        np.take(values, rebuild(ero).ravel(), out=out[k])
    return out


def _erode_cross(image: np.ndarray) -> np.ndarray:
    """Grey erosion with the 3x3 cross, ``mode="reflect"`` (a neighbour outside the image is
    the pixel itself, so it is left out): ``ndi.grey_erosion`` in four in-place minima."""
    out = image.copy()
    np.minimum(out[1:], image[:-1], out=out[1:])
    np.minimum(out[:-1], image[1:], out=out[:-1])
    np.minimum(out[:, 1:], image[:, :-1], out=out[:, 1:])
    np.minimum(out[:, :-1], image[:, 1:], out=out[:, :-1])
    return out


def _reconstructions(images: Images, p: Mapping) -> np.ndarray:
    """(y*x, C*K) reconstructions of every channel (column ``c*K + k``), computed once per site
    (``images.cache``; the pixels must not change in place between compartments)."""
    key = ("Granularity", tuple(sorted((k, float(v)) for k, v in p.items())))
    if key not in images.cache:
        ng = int(p["granular_spectrum_length"])
        recs = None
        for c, plane in enumerate(images.pixels):
            spectrum = _spectrum_images(plane, p)
            if recs is None:
                recs = np.empty((spectrum.shape[1], len(images.pixels) * ng))
            recs[:, c * ng:(c + 1) * ng] = spectrum.T
        images.cache[key] = recs
    return images.cache[key]


def _restore_mean_operator(new_shape, labels: np.ndarray, fg: np.ndarray, obj: np.ndarray,
                           objects: Objects) -> sp.csr_matrix:
    """Sparse (n, y*x) operator: bilinear restore to the labels' grid (cp_measure's
    ``map_coordinates`` grid), summed over each row's pixels ``fg`` (flat; ``obj`` their rows).

    Built straight as CSR: each object's weights are accumulated with ``bincount`` over a slot
    per subsampled pixel of the object's bounding box, so nothing is sorted.
    """
    n, shape = objects.n, labels.shape
    ny, nx = int(new_shape[0]), int(new_shape[1])
    # per grid row / column: source coordinate, its floor, the step to the upper neighbour
    r = np.arange(shape[0]) * (float(ny - 1) / float(shape[0] - 1))
    c = np.arange(shape[1]) * (float(nx - 1) / float(shape[1] - 1))
    it = np.int32 if labels.size < 2 ** 31 else np.int64  # int32: half the memory traffic
    r0, c0 = np.floor(r).astype(it), np.floor(c).astype(it)
    fr, fc = r - r0, c - c0
    dr, dc = np.minimum(r0 + 1, ny - 1) - r0, np.minimum(c0 + 1, nx - 1) - c0
    i, j = np.divmod(fg.astype(it), shape[1])
    # map_coordinates(cval=0): a source coordinate just past the grid contributes 0
    if (r > ny - 1).any() or (c > nx - 1).any():
        inside = (r[i] <= ny - 1) & (c[j] <= nx - 1)
        i, j, obj = i[inside], j[inside], obj[inside]
    # each object's bounding box on the subsampled grid (the rows and columns it reads)
    top, left = np.zeros(n, np.int64), np.zeros(n, np.int64)
    bottom, right = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    boxes = ndi.find_objects(labels)
    for row, number in enumerate(objects.numbers.tolist()):
        box = boxes[number - 1] if 0 < number <= len(boxes) else None
        if box is not None:
            top[row], bottom[row] = r0[box[0].start], r0[box[0].stop - 1] + dr[box[0].stop - 1]
            left[row], right[row] = c0[box[1].start], c0[box[1].stop - 1] + dc[box[1].stop - 1]
    width = right - left + 1
    size = (bottom - top + 1) * width
    offset = np.cumsum(size) - size
    w_obj = width.astype(it)[obj]
    slot = (offset - top * width - left).astype(it)[obj] + r0[i] * w_obj + c0[j]
    step_r, step_c = dr[i] * w_obj, dc[j]
    wr1, wc1 = fr[i], fc[j]
    wr0, wc0 = 1 - wr1, 1 - wc1
    total = int(size.sum())
    data = np.bincount(slot, wr0 * wc0, minlength=total)
    data += np.bincount(slot + step_c, wr0 * wc1, minlength=total)
    slot += step_r
    data += np.bincount(slot, wr1 * wc0, minlength=total)
    data += np.bincount(slot + step_c, wr1 * wc1, minlength=total)
    slot_obj = np.repeat(np.arange(n), size)
    a, b = np.divmod(np.arange(total) - offset[slot_obj], width[slot_obj])
    columns = (top[slot_obj] + a) * nx + left[slot_obj] + b
    indptr = np.concatenate([[0], np.cumsum(size)])
    return sp.csr_matrix((data, columns, indptr), shape=(n, ny * nx))


@register_family("Granularity", columns=_columns, order=50,
                 defaults=GRANULARITY_DEFAULTS)
def granularity(objects: Objects, images: Images, params: Mapping) -> dict[str, np.ndarray]:
    """Granular spectrum of each object of one compartment, per channel.

    Parameters
    ----------
    objects : Objects
        (Y, X) labels and the N object numbers (rows).
    images : Images
        (C, Y, X) float64 pixels and the channel names.
    params : mapping
        ``features.Granularity``: ``subsample_size``, ``image_sample_size``,
        ``element_size``, ``granular_spectrum_length``.

    Returns
    -------
    dict of str to (N,) float64 ndarray; NaN for an object without pixels.
    """
    p = {**GRANULARITY_DEFAULTS, **params}
    n, ng = objects.n, int(p["granular_spectrum_length"])
    out = {name: np.full(n, np.nan) for name in _columns(images.channels, p)}
    labels = objects.labels
    shape = labels.shape
    new_shape = _subsampled_shape(shape, p["subsample_size"])
    if n == 0 or labels.max(initial=0) == 0 or (new_shape < 2).any():
        return out  # cp_measure: NaN where subsampling leaves fewer than 2 samples an axis
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    rows = objects.rows(flat[fg])
    if (rows < 0).any():  # labels that are not rows are ignored
        fg, rows = fg[rows >= 0], rows[rows >= 0]
    counts = np.bincount(rows, minlength=n).astype(float)
    present = counts > 0
    operator = _restore_mean_operator(new_shape, labels, fg, rows, objects)
    recs = _reconstructions(images, p)  # (y*x, C*K)
    n_ch = len(images.channels)
    raw = images.pixels.reshape(n_ch, -1)[:, fg]  # (C, pixels)
    total = np.stack([np.bincount(rows, weights=v, minlength=n) for v in raw], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = (operator @ recs) / counts[:, None]  # (n, C*K)
        means = means.reshape(n, n_ch, ng)
        for c, ch in enumerate(images.channels):
            start = total[:, c] / counts
            current = np.column_stack([start, means[:, c]])  # (n, K+1)
            floor = np.maximum(start, np.finfo(float).eps)[:, None]
            spectrum = (current[:, :-1] - current[:, 1:]) * 100 / floor
            spectrum[~present] = np.nan
            for k in range(ng):
                out[f"{k + 1}_{ch}"] = spectrum[:, k]
    return out
