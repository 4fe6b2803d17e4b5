"""The QC gate: which absolute checks a site's metrics fail, and why.

Checks (each on ``params["<check>_channels"]``, null = every channel), in this order:

* focus: ``QC_FocusScore < min_focus_score`` -> out of focus (0: no structure at all);
* saturation: ``QC_SaturatedFraction > max_saturated_fraction``;
* foreground: ``QC_ForegroundFraction < min_foreground_fraction`` -> no cells?

A threshold set to null disables its check. A metric that is NaN (could not be measured) fails
its check. A site passes QC when :func:`failed_checks` returns nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from plateflow.qc.site import metric_key

logger = logging.getLogger(__name__)

__all__ = ["CHECKS", "failed_checks"]

#: The absolute checks: (check, metric family, threshold parameter), in the order they run.
CHECKS = (
    ("focus", "FocusScore", "min_focus_score"),
    ("saturation", "SaturatedFraction", "max_saturated_fraction"),
    ("foreground", "ForegroundFraction", "min_foreground_fraction"),
)


def _check_channels(selected: Sequence[str] | None, channels: Sequence[str], key: str) -> list:
    """The channels a check runs on: ``selected`` (all when None), each one known."""
    if selected is None:
        return list(channels)
    if isinstance(selected, str):
        selected = [selected]
    unknown = [c for c in selected if c not in channels]
    if unknown:
        raise ValueError(
            f"QC setting '{key}' names channel(s) {', '.join(map(str, unknown))}, but this plate's "
            f"channels are {', '.join(channels)}"
        )
    return list(selected)


def _get(metrics: dict, metric: str, channel: str) -> float:
    """One metric of one channel, as float; ValueError naming the column when it is missing."""
    key = metric_key(metric, channel)
    try:
        return float(metrics[key])
    except KeyError:
        raise ValueError(
            f"QC metric {key} is missing: were the metrics measured with the same channels?"
        ) from None


def _reason(check: str, channel: str, value: float, threshold: float) -> str | None:
    """Human-readable text of a failed check, or None when the value passes."""
    if math.isnan(value):
        return f"{channel}: {check} metric could not be measured"
    if check == "focus" and value < threshold:
        why = "out of focus" if value > 0 else "no structure above noise: empty or blurred"
        return f"{channel}: focus score {value:.3g} < {threshold:.3g} ({why})"
    if check == "saturation" and value > threshold:
        return f"{channel}: {100 * value:.1f}% saturated pixels > {100 * threshold:.1f}%"
    if check == "foreground" and value < threshold:
        return f"{channel}: foreground {100 * value:.2g}% < {100 * threshold:.2g}% (no cells?)"
    return None


def failed_checks(metrics: dict, channels: Sequence[str], *, params: dict) -> list[dict]:
    """Every failed QC check of one site, as records (for re-acquisition lists).

    The checks of the module docstring, in order (focus, saturation, foreground), each on the
    channels in the order of its ``*_channels`` setting.

    Raises ValueError when a ``*_channels`` setting names a channel the site does not have,
    or a checked metric is missing from ``metrics``.

    Parameters
    ----------
    metrics : dict
        Output of :func:`plateflow.qc.site.measure_site`.
    channels : list of str
        The site's channel names.
    params : dict
        QC parameters, see :data:`plateflow.qc.DEFAULT_PARAMS`.

    Returns
    -------
    list of dict
        One dict per failed check with keys ``channel`` (str), ``metric`` (metric family, e.g.
        ``"FocusScore"``; the column is ``QC_<metric>_<channel>``), ``value`` (float, NaN when it
        could not be measured), ``threshold`` (float) and ``reason`` (one human-readable line, e.g.
        ``"DNA: focus score 1.6 < 2.3 (out of focus)"``). Empty when the site passes.
    """
    failed: list[dict] = []
    for check, metric, threshold_key in CHECKS:
        threshold = params[threshold_key]
        if threshold is None:
            continue
        threshold = float(threshold)
        for ch in _check_channels(params[f"{check}_channels"], channels, f"{check}_channels"):
            value = _get(metrics, metric, ch)
            reason = _reason(check, ch, value, threshold)
            if reason is not None:
                failed.append(
                    {
                        "channel": ch,
                        "metric": metric,
                        "value": value,
                        "threshold": threshold,
                        "reason": reason,
                    }
                )
    return failed

