"""Instance-segmentation accuracy against ground-truth masks.

The measures of the 2018 Data Science Bowl and of the Cellpose and StarDist papers: objects
are matched one-to-one by intersection over union (IoU), maximising the total IoU of matched
pairs (Hungarian assignment; above IoU 0.5 the match is unique anyway), and at each IoU
threshold ``t``

* ``AP = TP / (TP + FP + FN)`` (the DSB's "average precision" of one image),
* ``precision = TP / (TP + FP)`` and ``recall = TP / (TP + FN)``,

where a true positive is a matched pair with IoU >= ``t``. ``AP_50_95`` is the mean AP over
``t = 0.50, 0.55, ..., 0.95``. ``Dice`` is the pixel-level overlap of the foregrounds,
``2 |P & T| / (|P| + |T|)``. Pooled figures over many images add up TP, FP and FN first
(:func:`pooled`), so that images with many objects weigh as much as their objects.

scikit-image has no instance-matching AP, and StarDist's ``matching`` needs its whole package
(TensorFlow-free but heavy); this is 60 lines of NumPy + SciPy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["IOU_THRESHOLDS", "iou_matrix", "label_iou", "match_counts", "pooled", "score"]

#: IoU thresholds of ``AP_50_95``.
IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))


def label_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of labels ``1..max`` of two label images: an (n_a, n_b) float array,
    row ``i`` for label ``i + 1`` of ``a`` (a label with no pixels has IoU 0 everywhere).

    Counted with one ``bincount`` of the overlapping pixels' label pairs.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {a.shape} vs {b.shape}")
    na, nb = int(a.max(initial=0)), int(b.max(initial=0))
    both = (a > 0) & (b > 0)
    overlap = np.bincount(a[both] * (nb + 1) + b[both], minlength=(na + 1) * (nb + 1))
    overlap = overlap.reshape(na + 1, nb + 1)[1:, 1:].astype(np.float64)
    area_a = np.bincount(a.ravel(), minlength=na + 1)[1:].astype(np.float64)
    area_b = np.bincount(b.ravel(), minlength=nb + 1)[1:].astype(np.float64)
    return overlap / np.maximum(area_a[:, None] + area_b[None, :] - overlap, 1.0)


def iou_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """IoU of every (true, predicted) object pair: a (n_true, n_predicted) float array.

    Labels need not be consecutive; rows and columns follow the sorted non-zero labels.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"masks differ in size: {truth.shape} vs {predicted.shape}")
    # renumber each image's objects 1..n in sorted label order (background stays 0)
    t_ids, t_inv = np.unique(truth, return_inverse=True)
    p_ids, p_inv = np.unique(predicted, return_inverse=True)
    t_lab = t_inv.reshape(truth.shape) + int(t_ids[0] != 0)
    p_lab = p_inv.reshape(predicted.shape) + int(p_ids[0] != 0)
    return label_iou(t_lab, p_lab)


def match_counts(truth: np.ndarray, predicted: np.ndarray,
                 thresholds: Iterable[float] = IOU_THRESHOLDS) -> dict[float, tuple[int, int, int]]:
    """(TP, FP, FN) per IoU threshold, after one-to-one matching by total IoU."""
    iou = iou_matrix(truth, predicted)
    n_true, n_pred = iou.shape
    matched = np.zeros(0)
    if n_true and n_pred:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        matched = iou[rows, cols]
    counts = {}
    for t in thresholds:
        tp = int(np.count_nonzero(matched >= t))
        counts[float(t)] = (tp, n_pred - tp, n_true - tp)
    return counts


def _ratios(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    ap = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    precision = tp / (tp + fp) if tp + fp else float(fn == 0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    return ap, precision, recall


def score(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy of one image: AP_50, AP_50_95, Precision_50, Recall_50, Dice, object counts.

    Also ``TP_50``, ``FP_50`` and ``FN_50``, so that images can be pooled (:func:`pooled`).
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    counts = match_counts(truth, predicted)
    ap50, precision, recall = _ratios(*counts[0.5])
    aps = [_ratios(*counts[float(t)])[0] for t in IOU_THRESHOLDS]
    t_fg, p_fg = truth > 0, predicted > 0
    total = int(t_fg.sum() + p_fg.sum())
    dice = 2.0 * int(np.count_nonzero(t_fg & p_fg)) / total if total else 1.0
    tp, fp, fn = counts[0.5]
    return {
        "AP_50": ap50, "AP_50_95": float(np.mean(aps)), "Precision_50": precision,
        "Recall_50": recall, "Dice": dice, "TP_50": tp, "FP_50": fp, "FN_50": fn,
        "N_True": len(np.unique(truth[t_fg])), "N_Predicted": len(np.unique(predicted[p_fg])),
    }


def pooled(scores: Iterable[Mapping]) -> dict[str, float]:
    """AP, precision and recall at IoU 0.5 over many images, from their summed TP, FP, FN."""
    tp = fp = fn = 0
    for row in scores:
        tp += int(row["TP_50"])
        fp += int(row["FP_50"])
        fn += int(row["FN_50"])
    ap, precision, recall = _ratios(tp, fp, fn)
    return {"AP_50": ap, "Precision_50": precision, "Recall_50": recall,
            "TP_50": tp, "FP_50": fp, "FN_50": fn}
