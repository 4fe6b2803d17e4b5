"""HTML building blocks: escaping, number formats, and images embedded as base64 PNGs."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable

import imagecodecs
import numpy as np

__all__ = ["e", "fmt_number", "fmt_percent", "formatter", "img_tag", "png_bytes"]


def e(text: object) -> str:
    """``str(text)`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def fmt_number(value: float | None) -> str:
    """A value with 3 significant digits (4 from 100 on); ``"n/a"`` for None or not finite."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3g}"


def fmt_percent(value: float | None) -> str:
    """A fraction as a percentage: ``0.031`` -> ``"3.1 %"``; ``"n/a"`` for None or not finite."""
    if value is None or not math.isfinite(value):
        return "n/a"
    p = 100 * value
    if p == 0:
        return "0 %"
    return f"{p:.2g} %" if p < 10 else f"{p:.0f} %"


def formatter(metric: str) -> Callable[[float], str]:
    """The format of a metric family: percentages for ``*Fraction``, numbers otherwise."""
    return fmt_percent if metric.endswith("Fraction") else fmt_number


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an 8-bit image as PNG.

    Parameters
    ----------
    image : (Y, X) or (Y, X, 3) uint8 ndarray
        Grey or RGB.

    Returns
    -------
    bytes
        A complete PNG file.
    """
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"a PNG needs a (Y, X) or (Y, X, 3) image, got shape {a.shape}")
    return bytes(imagecodecs.png_encode(a, level=6))


def img_tag(image: np.ndarray, *, alt: str, cls: str = "") -> str:
    """An ``<img>`` holding ``image`` ((Y, X) or (Y, X, 3) uint8) as a base64 PNG data URI."""
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{e(alt)}" src="data:image/png;base64,{data}">'
