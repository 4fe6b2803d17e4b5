"""The report stage: one self-contained HTML QC report per run, to judge each plate at a glance.

For every plate the report shows, top to bottom:

1. a headline: sites total / passed / failed / unreadable, wells with no usable site, the most
   common failure reasons and a coloured verdict (rules in
   :data:`plateflow.report.summary.VERDICT_RULES`) — :mod:`~plateflow.report.summary`,
   :mod:`~plateflow.report.headline`;
2. plate maps (heatmaps drawn as HTML tables, one cell per well, the well value being the median
   over its sites) of the focus score, saturated fraction, foreground fraction and median
   intensity of every channel, and of the fraction of sites that did not pass; plate-relative
   z-scores (``QC_PlateZ_<Metric>_<Channel>`` columns) in a folded section when present —
   :mod:`~plateflow.report.heatmaps` on the geometry of :mod:`~plateflow.report.plate_layout`;
3. thumbnails of the flagged (failed or unreadable) sites, each channel auto-contrasted
   (1st-99th percentile) side by side, saturated pixels in red, with the reasons underneath —
   :mod:`~plateflow.report.thumbnails`;
4. the flat-field (illumination function) of each channel with its min, max and
   corner-to-centre ratio — :mod:`~plateflow.report.flatfields`;
5. a table of every flagged site — :mod:`~plateflow.report.headline`.

The file needs no network and no JavaScript: images are embedded base64 PNGs
(:func:`plateflow.report.html.png_bytes`, made with ``imagecodecs``), styles are inline
(:mod:`~plateflow.report.page`). :func:`plateflow.report.run.write_qc_report` reads the inputs
(QC tables, flat-fields, raw images of flagged sites) and writes the page.
"""

from plateflow.report.summary import VERDICT_RULES, Summary, plate_from_table, summarise

__all__ = ["VERDICT_RULES", "Summary", "plate_from_table", "summarise"]
