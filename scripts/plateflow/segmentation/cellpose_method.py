"""The ``cellpose`` method: Cellpose 4 (``CellposeModel``, the ``cpsam`` family), on the GPU when
there is one.

- **Load once.** :meth:`Cellpose.load` checks the staged weights file (it exists, and its sha256
  is the configured one; :func:`~plateflow.segmentation.weights.check_staged`) and builds one
  ``CellposeModel`` per batch job from that absolute path. Cellpose's own downloader (which
  turns TLS verification off and checks no hash) is never reached: a missing file is an error
  that says how to stage one, and the downloader is disabled while the model is built.
- **Batches.** :meth:`Cellpose.segment_batch` gets ``sites_per_call`` sites at once and runs
  one ``CellposeModel.eval`` per compartment on all of them, as one (N, Y, X, 3) stack, so
  that tiles of different sites share the GPU's batches of ``batch_size`` tiles. (A list
  would be evaluated image by image.)
- **Channels, by biological name.** Nuclei: the image ``[DNA, 0, 0]`` (``nuclei_channel``).
  Cells: ``[cells, DNA, 0]`` (``cells_channel``), Cellpose's cytoplasm + nucleus convention.
  Without a cells channel, cells are the nuclei grown by ``cell_expansion_px`` (no overlaps;
  0: cells = nuclei), and only the nuclei pass runs.
- **Pairing.** The two passes are paired into the :class:`~.base.Segmentation` contract by
  :func:`~plateflow.segmentation.pairing.pair_objects`; ``info`` counts what each rule removed.
- **Confidence per object.** ``<Compartment>_Segmentation_Probability``: the mean of
  sigmoid(cell probability) over the object's mask as the model found it (before pairing);
  ``<Compartment>_Segmentation_FlowError``: the mean squared difference between the network's
  flows and the flows recomputed from that mask (Cellpose's ``metrics.flow_error``, which its
  ``flow_threshold`` cuts on). ``Cells_*`` only with a cells channel.
"""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

import numpy as np
from skimage.segmentation import expand_labels

from plateflow.segmentation.base import Segmentation, SegmentationMethod, SiteImage, register
from plateflow.segmentation.pairing import pair_objects, remove_large
from plateflow.segmentation.weights import ModelStagingError, check_staged

logger = logging.getLogger(__name__)

__all__ = ["Cellpose"]

#: Percentile normalisation (1-99 %) of each channel of each site on its own; a dict, so that
#: Cellpose does not change its module-level defaults.
_NORMALIZE = {"normalize": True, "norm3D": False}


class _Quiet(logging.Filter):
    """Drop Cellpose's warning that a stack of sites is 'a 3D stack made per plane' (we mean
    it), and its per-call progress lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "3D stack used" not in message and "norm3D" not in message


@register("cellpose")
class Cellpose(SegmentationMethod):
    """Nuclei and cells by Cellpose 4 (see the module docstring)."""

    #: The ``segmentation.cellpose`` section.
    defaults: ClassVar[dict[str, Any]] = {
        # Typical object diameter (px): the image is rescaled so that it becomes 30 px; None =
        # no rescaling (Cellpose-SAM is trained over a wide range of sizes).
        "diameter": None,
        # Objects whose flow error exceeds this are discarded (0: keep all).
        "flow_threshold": 0.4,
        # Pixels whose cell-probability logit exceeds this seed objects (lower: more, larger).
        "cellprob_threshold": 0.0,
        # Smallest object kept, in px (Cellpose's min_size).
        "min_size": 15,
        # Largest object kept, in px; None = no limit beyond Cellpose's own (40 % of the site).
        "max_size": None,
        # 256x256 tiles per network call: raise it to fill a large GPU.
        "batch_size": 32,
        # Run the network in bfloat16 (fast on GPUs; on a CPU only with AMX/AVX512-BF16).
        "bf16": True,
        # Sites per eval call (the batch job hands over this many at once).
        "sites_per_call": 8,
        # Test-time augmentation: overlapping tiles, flipped, averaged (slower).
        "augment": False,
        # Cells without a cells channel: nuclei grown by this many px (0: cells = nuclei).
        "cell_expansion_px": 10,
    }

    def __init__(self, config=None, **common):
        super().__init__(config, **common)
        p = self.config
        checks = {
            "flow_threshold": p["flow_threshold"] >= 0,
            "min_size": p["min_size"] >= 0,
            "max_size": p["max_size"] is None or p["max_size"] > 0,
            "batch_size": p["batch_size"] >= 1,
            "sites_per_call": p["sites_per_call"] >= 1,
            "diameter": p["diameter"] is None or p["diameter"] > 0,
            "cell_expansion_px": p["cell_expansion_px"] >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"segmentation.cellpose.{key} is out of range: {p[key]!r}")
        self.sites_per_call = int(p["sites_per_call"])
        self.net = None
        self.device: str | None = None

    # ------------------------------------------------------------------------------ loading --
    def load(self) -> None:
        """Check the staged weights and build the model, once per batch job."""
        if self.net is not None:
            return
        expected = (self.model_config or {}).get("sha256")
        if self.model_config is not None and not expected:
            raise ModelStagingError("segmentation.model.sha256 is not set: the cellpose method "
                                    "loads only weights whose hash the config pins")
        path = check_staged(self.weights)
        name = (self.model_config or {}).get("name") or path.name
        self.record_weights(path, name=name)
        check_staged(path, found_sha256=self.weights_sha256, sha256=expected)
        # Cellpose reads its cache folder at import: point it at ours (it must never download)
        os.environ.setdefault("CELLPOSE_LOCAL_MODELS_PATH", str(path.resolve().parent))
        import torch
        from cellpose import models

        cellpose_logger = logging.getLogger(models.__name__)
        if not any(isinstance(f, _Quiet) for f in cellpose_logger.filters):
            cellpose_logger.addFilter(_Quiet())
        gpu = bool(torch.cuda.is_available())
        # An existing absolute path: Cellpose loads it and never reaches its downloader (a
        # path that does not exist would silently fall back to downloading cpsam_v2, hence
        # the check above).
        self.net = models.CellposeModel(gpu=gpu, pretrained_model=str(path.resolve()),
                                        use_bfloat16=bool(self.config["bf16"]))
        self.device = self.net.device.type
        logger.info("cellpose: model %s (sha256 %s) on %s, bf16=%s", name, self.weights_sha256,
                    self.device, self.config["bf16"])

    # --------------------------------------------------------------------------- segmenting --
    def segment(self, site: SiteImage) -> Segmentation:
        """Segment one site (a batch of one)."""
        return self.segment_batch([site])[0]

    def segment_batch(self, sites: list[SiteImage]) -> list[Segmentation]:
        """Segment several sites with one ``eval`` call per compartment."""
        if not sites:
            return []
        self.load()
        dna = [site.plane(self.nuclei_channel, key="nuclei_channel") for site in sites]
        nuclei = self._eval([_rgb(d) for d in dna])
        cells = None
        if self.cells_channel is not None:
            bodies = [site.plane(self.cells_channel, key="cells_channel") for site in sites]
            cells = self._eval([_rgb(b, d) for b, d in zip(bodies, dna)])
        return [self._site_result(nuclei[i], None if cells is None else cells[i])
                for i in range(len(sites))]

    def _eval(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
        """Masks, flows (2, Y, X) and cell-probability logits (Y, X) of each (Y, X, 3) image,
        from one ``CellposeModel.eval`` call."""
        p = self.config
        kwargs = {"batch_size": int(p["batch_size"]), "diameter": p["diameter"],
                  "flow_threshold": float(p["flow_threshold"]),
                  "cellprob_threshold": float(p["cellprob_threshold"]),
                  "min_size": int(p["min_size"]), "augment": bool(p["augment"]),
                  "normalize": dict(_NORMALIZE)}
        if len({image.shape for image in images}) == 1:
            stack = np.stack(images)
            n, height, width = stack.shape[:3]
            masks, flows, _ = self.net.eval(stack, channel_axis=3, **kwargs)
            masks = np.asarray(masks).reshape(n, height, width)
            dp = np.asarray(flows[1]).reshape(2, n, height, width)
            prob = np.asarray(flows[2]).reshape(n, height, width)
            return [(masks[i], dp[:, i], prob[i]) for i in range(n)]
        masks, flows, _ = self.net.eval(list(images), channel_axis=2, **kwargs)
        return [(np.asarray(m), np.asarray(f[1]), np.asarray(f[2]))
                for m, f in zip(masks, flows)]

    def _site_result(self, nuclei_out, cells_out) -> Segmentation:
        p = self.config
        nuclei_raw = nuclei_out[0].astype(np.int64)
        info: dict[str, Any] = {"device": self.device, "diameter": p["diameter"],
                                "n_nuclei_found": int(np.unique(nuclei_raw[nuclei_raw > 0]).size)}
        if cells_out is None:
            nuclei_raw, n_large = remove_large(nuclei_raw, p["max_size"])
            grown = expand_labels(nuclei_raw, distance=int(p["cell_expansion_px"]))
            pairing = pair_objects(nuclei_raw, grown)
            pairing.removed["nuclei_removed_max_size"] = n_large
        else:
            cells_raw = cells_out[0].astype(np.int64)
            info["n_cells_found"] = int(np.unique(cells_raw[cells_raw > 0]).size)
            pairing = pair_objects(nuclei_raw, cells_raw, max_size=p["max_size"])
        info.update(pairing.removed)
        objects = _confidence("Nuclei", nuclei_out, pairing.nucleus_source, self.net.device)
        if cells_out is not None:
            objects.update(_confidence("Cells", cells_out, pairing.cell_source, self.net.device))
        return self.result(pairing.nuclei, pairing.cells, info=info, objects=objects)


def _rgb(first: np.ndarray, second: np.ndarray | None = None) -> np.ndarray:
    """(Y, X, 3) float32 image [first, second or 0, 0], Cellpose's channel layout."""
    image = np.zeros((*first.shape, 3), np.float32)
    image[..., 0] = first
    if second is not None:
        image[..., 1] = second
    return image


def _confidence(compartment: str, output: tuple[np.ndarray, ...], source: np.ndarray,
                device) -> dict[str, np.ndarray]:
    """Per-object probability and flow error of ``compartment`` (see the module docstring), for
    the model's objects ``source`` (labels of ``output``'s masks), in output order."""
    masks, dp, logits = output
    masks = np.asarray(masks).astype(np.int64)
    n = int(masks.max(initial=0)) + 1
    area = np.bincount(masks.ravel(), minlength=n).astype(np.float64)
    area[area == 0] = np.nan
    prob = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    mean_prob = np.bincount(masks.ravel(), weights=prob.ravel(), minlength=n) / area
    return {f"{compartment}_Segmentation_Probability": mean_prob[source],
            f"{compartment}_Segmentation_FlowError": flow_error(masks, dp, device=device)[source]}


def flow_error(masks: np.ndarray, dp: np.ndarray, *, device=None) -> np.ndarray:
    """Per-label flow error (index = label; 0 and absent labels NaN): the mean over the mask of
    the squared difference between the flows recomputed from the mask and the network's flows
    ``dp`` / 5, as ``cellpose.metrics.flow_error`` computes it."""
    import torch
    from cellpose.dynamics import masks_to_flows_gpu

    masks = np.asarray(masks).astype(np.int64)
    n = int(masks.max(initial=0)) + 1
    if n == 1:
        return np.full(1, np.nan)
    mask_flows, _ = masks_to_flows_gpu(masks, device=device or torch.device("cpu"))
    error = ((mask_flows - np.asarray(dp, np.float64) / 5.0) ** 2).sum(axis=0)
    area = np.bincount(masks.ravel(), minlength=n).astype(np.float64)
    area[area == 0] = np.nan
    per_label = np.bincount(masks.ravel(), weights=error.ravel(), minlength=n) / area
    per_label[0] = np.nan
    return per_label
