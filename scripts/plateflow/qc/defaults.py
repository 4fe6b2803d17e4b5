"""The QC stage's parameters (the ``qc:`` config section) and their defaults.

The config JSON schema (``workflow/schemas/config.schema.yaml``, section ``qc``) fills the
same defaults; a test keeps the two equal.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PARAMS"]

#: Default QC parameters (the config JSON schema fills the same defaults).
DEFAULT_PARAMS: dict = {
    # --- measurement ---
    # pixel value counted as saturated; null = the image type's maximum (255, 65535, ...)
    "saturation_level": None,
    # focus score = Laplacian energy at Gaussian scale focus_sigma_fine / at focus_sigma_coarse (px)
    "focus_sigma_fine": 2.0,
    "focus_sigma_coarse": 4.0,
    # larger images are focus-scored on 4 tiles of focus_max_size // 2 px (one per quadrant)
    "focus_max_size": 1024,
    # long side (px) of the block-averaged image used for the foreground / object count
    "working_size": 512,
    # smallest noise level (raw intensity units) assumed by the foreground threshold
    "noise_floor": 0.5,
    # foreground = smoothed pixel > local background + foreground_k * noise
    "foreground_k": 3.0,
    # initial local background = this percentile of each block of the background grid
    "background_percentile": 10.0,
    # the background grid has background_grid x background_grid blocks
    "background_grid": 16,
    # smallest connected foreground area (full-resolution px) counted as an object
    "min_object_area": 25,
    # PowerLogLogSlope is computed on square crops of at most this many px per side
    "powerspectrum_max_size": 512,
    # focus map: the image is cut into focus_tile_grid x focus_tile_grid tiles ...
    "focus_tile_grid": 8,
    # ... each scored on its central square of at most focus_tile_size px per side ...
    "focus_tile_size": 96,
    # ... and left out (no content) when its foreground fraction is below this
    "focus_tile_min_foreground": 0.05,
    # --- decisions (absolute thresholds; *_channels: list of channel names, null = all) ---
    "min_focus_score": 2.3,
    "focus_channels": None,
    "max_saturated_fraction": 0.01,
    "saturation_channels": None,
    "min_foreground_fraction": 0.002,
    "foreground_channels": None,
}
