"""Greyscale reconstruction by dilation for Granularity, many seeds under one mask, in ranks.

Granularity reconstructs, per channel, ``granular_spectrum_length`` ever more eroded copies of
one background-free image under that image (``skimage.morphology.reconstruction`` with the
3x3 cross). Erosion picks values of its input, so every seed's values are values of the mask:
the whole spectrum can be computed on the mask's dense value ranks (ranked once per channel),
where erosion is the same minimum filter and the reconstruction is scikit-image's own Cython
inner loop on the rank order of the seed and mask pixels, without ranking floats per call: the
order is one sort of small integers (numpy's radix sort while there are at most 65,536 distinct
values). scikit-image's own sort leaves ties in any order; the result does not depend on it.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import disk, reconstruction

try:  # scikit-image's Cython inner loop of reconstruction (private)
    from skimage.morphology._grayreconstruct import reconstruction_loop as _reconstruction_loop
except ImportError:  # pragma: no cover
    _reconstruction_loop = None

__all__ = ["RankReconstructor", "value_ranks"]


def value_ranks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks of an image's values: ``(ranks, values)`` with ``values[ranks] == image``.

    Parameters
    ----------
    image : (M, N) float ndarray

    Returns
    -------
    ranks : (M, N) int32 ndarray
    values : (U,) float64 ndarray
        The distinct values, ascending.
    """
    values, ranks = np.unique(image, return_inverse=True)
    return ranks.reshape(image.shape).astype(np.int32), values.astype(float)


class RankReconstructor:
    """Reconstruction by dilation (3x3 cross) of rank images under one fixed rank image.

    Parameters
    ----------
    mask : (M, N) int ndarray
        Dense ranks of the mask (:func:`value_ranks`), 0..levels-1.
    levels : int
        Number of distinct ranks.
    """

    def __init__(self, mask: np.ndarray, levels: int):
        self.mask, self.levels = mask, int(levels)
        self.shape = mask.shape
        hp, wp = mask.shape[0] + 2, mask.shape[1] + 2
        self.size = hp * wp
        isize = 2 * self.size
        self.sint = np.result_type(np.min_scalar_type(-isize), np.int32)
        self.uint = np.dtype(self.sint.char.upper())
        inner = (np.arange(1, hp - 1)[:, None] * wp + np.arange(1, wp - 1)).ravel()
        border = np.ones(self.size, dtype=bool)
        border[inner] = False
        self.inner = inner.astype(self.sint)
        self.pad = np.concatenate([np.flatnonzero(border),
                                   self.size + np.flatnonzero(border)]).astype(self.sint)
        flat = mask.ravel()
        self.template = np.zeros(isize, dtype=self.uint)
        self.template[self.size + inner] = flat
        self.strides = np.array([-wp, -1, 1, wp], dtype=self.sint)
        self.small = self.levels <= 1 << 16  # uint16 ranks: numpy's radix sort

    def __call__(self, seed: np.ndarray) -> np.ndarray:
        """(M, N) int ranks of the reconstruction of ``seed`` (ranks, <= mask) under the mask."""
        if _reconstruction_loop is None:  # pragma: no cover
            return reconstruction(seed, self.mask, footprint=disk(1, dtype=bool)).astype(int)
        flat = seed.ravel()
        ranks = self.template.copy()
        ranks[self.pad] = flat.min()  # scikit-image pads seed and mask with the seed's minimum
        ranks[self.inner] = flat
        if self.small:  # numpy sorts 16-bit integers by radix
            index = np.argsort(ranks.astype(np.uint16), kind="stable").astype(self.sint)
        else:
            index = np.argsort(ranks).astype(self.sint)
        # linked list from the highest rank down (dilation)
        prev = np.empty(index.size, dtype=self.sint)
        nxt = np.empty(index.size, dtype=self.sint)
        nxt[index[0]], prev[index[-1]] = -1, -1
        nxt[index[1:]] = index[:-1]
        prev[index[:-1]] = index[1:]
        _reconstruction_loop(ranks, prev, nxt, self.strides, index[-1], self.size)
        return ranks[self.inner].reshape(self.shape)
