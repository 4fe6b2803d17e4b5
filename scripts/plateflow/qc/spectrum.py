"""CellProfiler's PowerLogLogSlope: the slope of a channel's log-log radial power spectrum.

Blur removes high frequencies, so the slope gets more negative with defocus; it does not
depend on brightness, offset or gain. See :func:`power_log_log_slope`.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["power_log_log_slope"]


def _spectrum_crops(shape: tuple[int, int], max_size: int) -> list[tuple[slice, slice]]:
    """Square crops of a (Y, X) image on which the power spectrum is computed.

    Side ``s = min(Y, X, max_size)``; four crops centred in the quadrants when the image holds
    two crops along both axes (e.g. 2160 or 1080 px images with ``max_size`` 512), else one
    crop centred in the image.
    """
    ny, nx = shape
    s = min(ny, nx, int(max_size))
    if ny >= 2 * s and nx >= 2 * s:
        centres = [(cy, cx) for cy in (ny // 4, (3 * ny) // 4) for cx in (nx // 4, (3 * nx) // 4)]
    else:
        centres = [(ny // 2, nx // 2)]
    crops = []
    for cy, cx in centres:
        y0 = min(max(cy - s // 2, 0), ny - s)
        x0 = min(max(cx - s // 2, 0), nx - s)
        crops.append((slice(y0, y0 + s), slice(x0, x0 + s)))
    return crops


@functools.lru_cache(maxsize=8)
def _ring_index(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CellProfiler's ring labels for the half-plane (``rfft2``) spectrum of a ``size`` square.

    CellProfiler's ``rps`` labels full-spectrum element ``(p, q)`` with
    ``floor(sqrt(min(p, n-1-p)**2 + min(q, n-1-q)**2)) + 1`` (note ``n-1-p``: the negative
    frequencies are counted one ring lower than their true radius ``n-p``; kept, to give the
    same numbers). An ``rfft2`` element ``(i, j)`` stands for the full-spectrum elements
    ``(i, j)`` and, for ``0 < j < n/2``, its mirror ``(-i, -j)`` (same power).

    Returns
    -------
    direct, mirror : (size, size // 2 + 1) intp ndarrays
        Labels of the element and of its mirror (0 where there is no separate mirror).
    fitted : (k,) intp ndarray
        The fitted labels ``2 .. floor(size / 8) - 1`` (CellProfiler's range: DC = label 1 out).
    """
    idx = np.arange(size)
    near = np.minimum(idx, size - 1 - idx)
    half = np.arange(size // 2 + 1)

    def label(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r2 = near[rows][:, None] ** 2 + near[cols][None, :] ** 2
        return np.floor(np.sqrt(r2)).astype(np.intp) + 1

    direct = label(idx, half)
    mirror = label((-idx) % size, (-half) % size)
    has_mirror = (half > 0) & (2 * half != size)
    mirror[:, ~has_mirror] = 0
    fitted = np.arange(2, math.floor(size / 8.0), dtype=np.intp)
    return direct, mirror, fitted


def power_log_log_slope(plane: np.ndarray, *, max_size: int = 512) -> float:
    """CellProfiler's PowerLogLogSlope of one channel: slope of the log-log power spectrum.

    As CellProfiler's MeasureImageQuality (``centrosome.radial_power_spectrum.rps`` and the
    fit in ``calculate_image_quality``): the mean is subtracted, the 2-D FFT taken (no window),
    the power ``|F|**2`` SUMMED (not averaged) over the rings of :func:`_ring_index` (ring label
    ``k + 1`` for distance ``floor(r) = k`` from DC in cycles per image), and the result is the
    least-squares slope of ``log(ring power)`` against ``log(label)`` for labels
    ``2 .. floor(size / 8) - 1``, rings with zero power left out: DC and the frequencies above
    ``size / 8`` cycles per image (wavelengths under about 8 px) are not fitted. Summing over
    rings makes the slope about 1 higher than that of the radially averaged spectrum.
    CellProfiler's scaling by the median absolute deviation does not change the slope and is
    skipped.

    The one difference from CellProfiler: the spectrum is computed on square crops of at most
    ``max_size`` px (see :func:`_spectrum_crops`) whose ring powers are added up, rather than on
    the whole, possibly non-square image; the fitted range keeps its high-frequency end (about
    8 px wavelength). On a square image of at most ``max_size`` px it equals CellProfiler's
    value.

    Parameters
    ----------
    plane : (Y, X) ndarray
        One raw channel.
    max_size : int
        Largest crop side (px).

    Returns
    -------
    float
        The slope (about -1.5 to -2 for sharp nuclei, more negative = blurrier); 0 for a
        constant image or one too small (under 24 px) to have a fitted frequency range.
    """
    crops = _spectrum_crops(plane.shape, max_size)
    size = crops[0][0].stop - crops[0][0].start
    direct, mirror, fitted = _ring_index(size)
    if fitted.size < 2:
        return 0.0
    n_labels = int(direct.max()) + 1
    ring_power = np.zeros(n_labels)
    for ys, xs in crops:
        tile = plane[ys, xs].astype(np.float32)
        tile -= np.float32(tile.mean(dtype=np.float64))
        spectrum = np.fft.rfft2(tile)
        power = (np.square(spectrum.real, dtype=np.float64) + np.square(spectrum.imag)).ravel()
        ring_power += np.bincount(direct.ravel(), power, minlength=n_labels)[:n_labels]
        ring_power += np.bincount(mirror.ravel(), power, minlength=n_labels)[:n_labels]
    y = ring_power[fitted]
    ok = y > 0
    if np.count_nonzero(ok) < 2:
        return 0.0
    x, y = np.log(fitted[ok]), np.log(y[ok])
    x = x - x.mean()
    # least-squares slope in closed form (no LAPACK call: it can wake OpenBLAS threads)
    return float((x * (y - y.mean())).sum() / (x * x).sum())

