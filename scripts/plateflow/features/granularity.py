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
computed once per site and image and reused by every compartment (a one-entry cache keyed on
the pixel array's identity: the images must not be modified in place between compartments).
"Restore then per-object mean" is linear in the reconstruction, so it is one sparse operator
per compartment, applied to all steps and channels in one product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
from skimage.morphology import disk, reconstruction

from plateflow.features.registry import Images, Objects, register_family

try:  # scikit-image's Cython inner loop of reconstruction (private)
    from skimage.morphology._grayreconstruct import reconstruction_loop as _reconstruction_loop
except ImportError:  # pragma: no cover
    _reconstruction_loop = None

__all__ = ["GRANULARITY_DEFAULTS", "granularity"]

#: Options of ``features.Granularity`` (CellProfiler's and cp_measure's defaults).
GRANULARITY_DEFAULTS = {
    "subsample_size": 0.25,
    "image_sample_size": 0.25,
    "element_size": 10,
    "granular_spectrum_length": 16,
}

# One-entry cache: (pixels array, option tuple, (C, K, y, x) reconstructions or None).
_CACHE: list = []


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


class _Reconstructor:
    """Greyscale reconstruction by dilation (3x3 cross) under one fixed mask, many seeds.

    The same algorithm as ``skimage.morphology.reconstruction`` (its Cython
    ``reconstruction_loop`` on the rank order of seed and mask pixels), but the mask is sorted
    once and each seed's order is merged into it, instead of sorting seed + mask twice per call.
    Falls back to scikit-image's function where its private loop is not importable.
    """

    def __init__(self, mask: np.ndarray):
        self.mask = mask
        self.shape = mask.shape
        hp, wp = mask.shape[0] + 2, mask.shape[1] + 2
        self.size = hp * wp
        isize = 2 * self.size
        self.sint = np.result_type(np.min_scalar_type(-isize), np.int32)
        self.uint = np.dtype(self.sint.char.upper())
        inner = (np.arange(1, hp - 1)[:, None] * wp + np.arange(1, wp - 1)).ravel()
        border = np.ones(self.size, dtype=bool)
        border[inner] = False
        self.inner = inner
        self.pad = np.concatenate([np.flatnonzero(border), self.size + np.flatnonzero(border)])
        order = np.argsort(mask.ravel())
        self.m_sorted = mask.ravel()[order]
        self.m_index = self.size + inner[order]
        self.strides = np.array([-wp, -1, 1, wp], dtype=self.sint)

    def __call__(self, seed: np.ndarray) -> np.ndarray:
        if _reconstruction_loop is None:
            return reconstruction(seed, self.mask, footprint=disk(1, dtype=bool))
        n = seed.size
        order = np.argsort(seed.ravel())
        s_sorted = seed.ravel()[order]
        # ascending merge: pad pixels (value = min(seed), the smallest) first, then seed and
        # mask pixels in value order (ties in any order, as with scikit-image's argsort)
        npad = self.pad.size
        pos_s = npad + np.arange(n) + np.searchsorted(self.m_sorted, s_sorted, "left")
        pos_m = npad + np.arange(n) + np.searchsorted(s_sorted, self.m_sorted, "right")
        index = np.empty(2 * self.size, dtype=self.sint)
        values = np.empty(2 * self.size)
        index[:npad], values[:npad] = self.pad, s_sorted[0]
        index[pos_s], values[pos_s] = self.inner[order], s_sorted
        index[pos_m], values[pos_m] = self.m_index, self.m_sorted
        new = np.empty(values.size, dtype=bool)
        new[0], new[1:] = True, values[1:] > values[:-1]
        rank_sorted = np.cumsum(new) - 1
        value_map = values[new]
        ranks = np.empty(values.size, dtype=self.uint)
        ranks[index] = rank_sorted
        index = index[::-1]  # dilation: largest first
        prev = np.full(values.size, -1, self.sint)
        nxt = np.full(values.size, -1, self.sint)
        prev[index[1:]] = index[:-1]
        nxt[index[:-1]] = index[1:]
        _reconstruction_loop(ranks, prev, nxt, self.strides, index[0], self.size)
        return value_map[ranks[self.inner]].reshape(self.shape)


def _spectrum_images(plane: np.ndarray, p: Mapping) -> np.ndarray:
    """(K, y, x): the K reconstructions of one channel on the subsampled grid."""
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
    cross = disk(1, dtype=bool)
    out = np.empty((int(p["granular_spectrum_length"]), *pixels.shape))
    ero = pixels
    rebuild = _Reconstructor(pixels)
    for k in range(out.shape[0]):
        ero = ndi.grey_erosion(ero, footprint=cross, mode="reflect")
        out[k] = rebuild(ero)
    return out


def _reconstructions(images: Images, p: Mapping) -> np.ndarray:
    key = tuple(sorted((k, float(v)) for k, v in p.items()))
    if _CACHE and _CACHE[0] is images.pixels and _CACHE[1] == key:
        return _CACHE[2]
    recs = np.stack([_spectrum_images(plane, p) for plane in images.pixels])
    _CACHE[:] = [images.pixels, key, recs]
    return recs


def _restore_mean_operator(shape, new_shape, labels: np.ndarray, objects: Objects):
    """Sparse (n, y*x) operator: bilinear restore to ``shape``, summed per row (cp_measure's
    ``map_coordinates`` grid), and each row's pixel count.

    Built straight as CSR: each object's weights are accumulated with one ``bincount`` over a
    slot per subsampled pixel of the object's bounding box, so nothing is sorted.
    """
    n = objects.n
    i, j = np.nonzero(labels)
    obj = objects.rows(labels[i, j])
    keep = obj >= 0
    i, j, obj = i[keep], j[keep], obj[keep]
    counts = np.bincount(obj, minlength=n).astype(float)
    # per grid row / column: source coordinate, its floor, and the upper neighbour
    r = np.arange(shape[0]) * (float(new_shape[0] - 1) / float(shape[0] - 1))
    c = np.arange(shape[1]) * (float(new_shape[1] - 1) / float(shape[1] - 1))
    # map_coordinates(cval=0): a source coordinate just past the grid contributes 0
    inside = (r[i] <= new_shape[0] - 1) & (c[j] <= new_shape[1] - 1)
    i, j, obj = i[inside], j[inside], obj[inside]
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    r1, c1 = np.minimum(r0 + 1, new_shape[0] - 1), np.minimum(c0 + 1, new_shape[1] - 1)
    if obj.size == 0:
        return sp.csr_matrix((n, int(np.prod(new_shape)))), counts
    index = np.arange(1, n + 1)
    top = np.asarray(ndi.minimum(r0[i], obj + 1, index), dtype=np.int64)
    left = np.asarray(ndi.minimum(c0[j], obj + 1, index), dtype=np.int64)
    bottom = np.asarray(ndi.maximum(r1[i], obj + 1, index), dtype=np.int64)
    right = np.asarray(ndi.maximum(c1[j], obj + 1, index), dtype=np.int64)
    empty = counts == 0
    top[empty], left[empty], bottom[empty], right[empty] = 0, 0, -1, -1
    width = right - left + 1
    size = (bottom - top + 1) * width
    offset = np.cumsum(size) - size
    slots, weights = [], []
    for rows, wr in ((r0, 1 - fr), (r1, fr)):
        for cols, wc in ((c0, 1 - fc), (c1, fc)):
            slots.append(offset[obj] + (rows[i] - top[obj]) * width[obj] + cols[j] - left[obj])
            weights.append(wr[i] * wc[j])
    data = np.bincount(np.concatenate(slots), np.concatenate(weights), minlength=size.sum())
    slot_obj = np.repeat(np.arange(n), size)
    a, b = np.divmod(np.arange(data.size) - offset[slot_obj], width[slot_obj])
    ncols = int(new_shape[1])
    columns = (top[slot_obj] + a) * ncols + left[slot_obj] + b
    indptr = np.concatenate([[0], np.cumsum(size)])
    operator = sp.csr_matrix((data, columns, indptr), shape=(n, int(new_shape[0]) * ncols))
    return operator, counts


@register_family("Granularity", columns=_columns, order=50,
                 defaults=GRANULARITY_DEFAULTS, enabled=False)
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
    operator, counts = _restore_mean_operator(shape, new_shape, labels, objects)
    present = counts > 0
    recs = _reconstructions(images, p)  # (C, K, y, x)
    n_ch = recs.shape[0]
    i, j = np.nonzero(labels)
    rows = objects.rows(labels[i, j])
    keep = rows >= 0
    raw = images.pixels[:, i[keep], j[keep]]  # (C, pixels)
    total = np.stack([np.bincount(rows[keep], weights=v, minlength=n) for v in raw], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = (operator @ recs.reshape(n_ch * ng, -1).T) / counts[:, None]  # (n, C*K)
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
