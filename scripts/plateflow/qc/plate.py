"""Plate-relative QC: flag sites that are outliers against their own plate.

"Blurry" depends on the plate: a robust z-score of each site's metric against the plate's
distribution (median and :func:`plateflow.core.stats.mad_sigma` over the sites that passed the
absolute checks) catches a site that is much worse than its neighbours even when it clears the
absolute threshold. The absolute thresholds stay the first line: when most of a plate is bad,
the plate's own distribution calls "bad" normal, and only the absolute rules catch it.

The flags do not stop a site (the QC gate is the absolute checks alone): a gate that depends on
the whole plate would re-judge every site whenever one is added.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from plateflow.core.contract import QC_PASS
from plateflow.core.stats import mad_sigma, median
from plateflow.qc.site import metric_key

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARAMS", "plate_relative_flags"]

#: metric -> which side is bad: "low" (e.g. focus), "high", or "both"
DIRECTIONS = {"FocusScore": "low", "ForegroundFraction": "low", "Intensity_P50": "both",
              "SaturatedFraction": "high", "PowerLogLogSlope": "low"}

DEFAULT_PARAMS: dict = {
    # judge each site against its plate as well as against the absolute thresholds
    "enabled": True,
    # robust z beyond which a site is flagged (in the bad direction of the metric)
    "max_robust_z": 6.0,
    # plates with fewer absolutely-passing sites than this get no plate-relative flags
    "min_sites": 10,
    # metrics judged against the plate (each over every channel it is measured on)
    "metrics": ["FocusScore", "ForegroundFraction"],
    # the spread used is at least this fraction of the plate median: on a very uniform plate a
    # site must still differ by max_robust_z x this fraction of the median to be flagged
    "min_relative_spread": 0.1,
}


def plate_relative_flags(
    table: pd.DataFrame, channels: Sequence[str], *, params: Mapping
) -> tuple[pd.DataFrame, list[dict]]:
    """Robust z of each site against its plate, and the checks that fail.

    Parameters
    ----------
    table : DataFrame
        The plate's site QC table (``QC_Status`` and ``QC_<Metric>_<Channel>`` columns).
    channels : sequence of str
    params : mapping
        See :data:`DEFAULT_PARAMS`.

    Returns
    -------
    z : DataFrame
        ``QC_PlateZ_<Metric>_<Channel>`` columns aligned with ``table`` (NaN where not judged).
    failures : list of dict
        One per flagged (site, channel, metric): ``row`` (index into ``table``), ``channel``,
        ``metric`` (``PlateZ_<Metric>``), ``value`` (the z), ``threshold`` and ``reason``.
    """
    limit = float(params["max_robust_z"])
    reference = table[table["QC_Status"] == QC_PASS]
    z_columns: dict[str, pd.Series] = {}
    failures: list[dict] = []
    judged = len(reference) >= int(params["min_sites"])
    if not judged:
        logger.info("only %d passing sites: no plate-relative QC (needs %d)", len(reference),
                    params["min_sites"])
    for metric in params["metrics"]:
        direction = DIRECTIONS.get(metric, "both")
        for channel in channels:
            column = metric_key(metric, channel)
            if column not in table.columns:
                continue
            z = pd.Series(np.nan, index=table.index, dtype="float64")
            values = reference[column].astype("float64").dropna().to_numpy()
            if judged and values.size:
                centre = float(median(values))
                spread = mad_sigma(values)
                floor = float(params["min_relative_spread"]) * abs(centre)
                spread = max(spread, floor)
                if spread > 0 and math.isfinite(spread):
                    z = (table[column].astype("float64") - centre) / spread
                    for row, value in z.items():
                        if not math.isfinite(value):
                            continue
                        bad = (direction == "low" and value < -limit) or (
                            direction == "high" and value > limit) or (
                            direction == "both" and abs(value) > limit)
                        if bad:
                            side = "below" if value < 0 else "above"
                            failures.append({
                                "row": row, "channel": channel, "metric": f"PlateZ_{metric}",
                                "value": float(value),
                                "threshold": -limit if value < 0 else limit,
                                "reason": (
                                    f"{channel}: {metric} {table.at[row, column]:.3g} is "
                                    f"{abs(value):.1f} robust SDs {side} the plate median "
                                    f"{centre:.3g} (plate outlier)"),
                            })
            z_columns[metric_key(f"PlateZ_{metric}", channel)] = z
    return pd.DataFrame(z_columns, index=table.index), failures
