"""Sheets: plate folders, naming schemes and platemaps -> validated image sheets.

Runs when the workflow loads (:func:`~plateflow.sheets.discovery.load_experiment`, then
:func:`~plateflow.sheets.checks.check_config`), so a mistake fails in the first seconds with a
message naming the plate, well, site, file or config key. ``run.py`` writes a plate's sheet,
``results/sheets/{plate}.csv``, which the per-image stages read (``plateflow.core.contract``).
"""
