"""QC stage: per-site image quality metrics, the pass/fail gate, and plate-relative flags.

Every site gets ``QC_<Metric>_<Channel>`` metrics measured on its raw image
(:func:`measure_site`); the absolute checks (:func:`failed_checks`) make the QC gate
(``QC_Status``: pass, fail or unreadable) that every later stage reads; plate-relative robust
z-scores (:func:`plate_relative_flags`) flag sites much worse than their plate, for
re-acquisition, without stopping them.

Modules (pure array/DataFrame code, one idea each):

- :mod:`~plateflow.qc.defaults` — the ``qc:`` parameters and their defaults;
- :mod:`~plateflow.qc.intensity` — percentiles, mean, spread, entropy, saturation;
- :mod:`~plateflow.qc.laplacian` — Laplacian-of-Gaussian maps;
- :mod:`~plateflow.qc.focus` — the focus score;
- :mod:`~plateflow.qc.focus_map` — the patch-wise focus map;
- :mod:`~plateflow.qc.spectrum` — CellProfiler's PowerLogLogSlope;
- :mod:`~plateflow.qc.foreground` — background map, foreground mask, object count;
- :mod:`~plateflow.qc.site` — all metrics of one site (the metric catalogue);
- :mod:`~plateflow.qc.checks` — the absolute checks (the QC gate);
- :mod:`~plateflow.qc.plate` — plate-relative flags (the ``qc_plate:`` section);
- :mod:`~plateflow.qc.run` — the stage's I/O: ``measure_qc``, ``collect_plate_qc``.
"""

from plateflow.qc.checks import failed_checks
from plateflow.qc.defaults import DEFAULT_PARAMS
from plateflow.qc.focus import focus_score
from plateflow.qc.plate import plate_relative_flags
from plateflow.qc.site import METRIC_NAMES, measure_site, metric_key, unreadable_metrics
from plateflow.qc.spectrum import power_log_log_slope

__all__ = [
    "DEFAULT_PARAMS",
    "METRIC_NAMES",
    "failed_checks",
    "focus_score",
    "measure_site",
    "metric_key",
    "plate_relative_flags",
    "power_log_log_slope",
    "unreadable_metrics",
]
