"""Segmentation metrics: binary IoU (per image and dataset-cumulative) and mBA; multi-class PA, mAcc,
IoU/mIoU, Dice, precision/recall/F1 from a confusion matrix, and multi-class mBA.

mBA follows CascadePSP (Cheng et al., CVPR 2020), as used by CRM: five radii
``r_i = 1 + int((max_r - 1) / 5 * i)``, ``i = 0..4``, with ``max_r = (W + H) / 300``; the boundary band
is the morphological gradient of the ground truth with an elliptical kernel of size ``2r + 1``; the
score is the fraction of band pixels where the prediction equals the ground truth, averaged over the
radii (and then over images).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np


def _binary(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool:
        return a
    if a.dtype.kind == "f":
        return a >= 0.5
    return a >= (128 if a.max() > 1 else 1)


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(|pred AND gt|, |pred OR gt|) in pixels. Inputs: (H, W) bool, {0,1}, {0,255} or float
    (thresholded at 0.5). Raises ValueError on shape mismatch."""
    p, g = _binary(pred), _binary(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    return int(np.logical_and(p, g).sum()), int(np.logical_or(p, g).sum())


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU in [0, 1]; defined as 1.0 when both masks are empty."""
    i, u = intersection_union(pred, gt)
    return 1.0 if u == 0 else i / u


def boundary_radii(h: int, w: int, steps: int = 5) -> list[int]:
    """CascadePSP's mBA radii in pixels for an H x W image."""
    max_r = (w + h) / 300
    return [1 + int((max_r - 1) / steps * i) for i in range(steps)]


def boundary_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """mBA of one image in [0, 1] (see module docstring). An image whose ground truth has no boundary
    (empty or full) scores 1.0 if the prediction equals it everywhere, else 0.0."""
    p, g = _binary(pred), _binary(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    h, w = g.shape
    g8 = g.astype(np.uint8)
    accs = []
    for r in boundary_radii(h, w):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        band = cv2.morphologyEx(g8, cv2.MORPH_GRADIENT, kernel) > 0
        n = int(band.sum())
        if n == 0:
            return float(np.array_equal(p, g))
        accs.append(float((p[band] == g[band]).sum()) / n)
    return float(np.mean(accs))


def contour_offset(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean signed distance, in pixels, of the prediction's contour from the ground truth's boundary.

    The contour is the prediction's outermost pixels (those with a 4-neighbour outside it). Each is scored
    by the ground truth's L2 distance transform (OpenCV, 5x5 mask): ``d - 1`` inside the ground truth
    (0 on its outermost pixels), ``d`` outside it. So a prediction equal to the ground truth scores 0,
    one a pixel wider all round +1 (an outward rim), one a pixel narrower -1. Issue 22's check that
    a boundary step learns no dataset's annotation offset.

    Args:
        pred, gt: (H, W) masks as :func:`iou` takes them.

    Returns:
        float pixels; NaN when either mask is empty or fills the image.

    Raises:
        ValueError: the shapes differ.
    """
    p, g = _binary(pred), _binary(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    if not p.any() or not g.any() or g.all():
        return float("nan")
    p8, g8 = p.astype(np.uint8), g.astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    contour = p & (cv2.erode(p8, cross, borderType=cv2.BORDER_REPLICATE) == 0)
    if not contour.any():                              # the prediction fills the image: no contour
        return float("nan")
    inside = cv2.distanceTransform(g8, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - g8, cv2.DIST_L2, 5)
    signed = np.where(g, inside - 1.0, -outside)
    return float(-signed[contour].mean()) + 0.0       # + 0.0: no -0.0


@dataclass
class BinaryScores:
    """Accumulates per-image IoU, mBA and contour offset (:func:`contour_offset`) and the
    dataset-cumulative intersection/union."""

    ious: list[float] = field(default_factory=list)
    bas: list[float] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    inter: int = 0
    union: int = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        i, u = intersection_union(pred, gt)
        self.inter += i
        self.union += u
        self.ious.append(1.0 if u == 0 else i / u)
        self.bas.append(boundary_accuracy(pred, gt))
        self.offsets.append(contour_offset(pred, gt))

    def summary(self) -> dict[str, float]:
        """``{"n", "iou_mean", "iou_cumulative", "mba", "contour_offset_px"}``; IoU/mBA in percent
        (0..100); ``contour_offset_px`` the mean over images (those where it is defined) in pixels."""
        n = len(self.ious)
        offsets = [o for o in self.offsets if np.isfinite(o)]
        return {"n": n,
                "iou_mean": 100 * float(np.mean(self.ious)) if n else float("nan"),
                "iou_cumulative": 100 * self.inter / self.union if self.union else float("nan"),
                "mba": 100 * float(np.mean(self.bas)) if n else float("nan"),
                "contour_offset_px": float(np.mean(offsets)) if offsets else float("nan")}


# ---------------------------------------------------------------------------------------------
# Multi-class (semantic) metrics from a confusion matrix
# ---------------------------------------------------------------------------------------------

def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """int64 (C, C + 1) confusion matrix: rows = ground-truth class, columns = predicted class, and a
    last column for predictions outside 0..C-1 (e.g. a void label), which are wrong for any class.

    Pixels whose ground truth is ``ignore_index`` or outside 0..C-1 are left out.
    Raises ValueError on shape mismatch.
    """
    p, g = np.asarray(pred).astype(np.int64), np.asarray(gt).astype(np.int64)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    valid = (g >= 0) & (g < num_classes)
    if ignore_index is not None:
        valid &= g != ignore_index
    g, p = g[valid], p[valid]
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)
    cm = np.bincount(g * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return cm.reshape(num_classes, num_classes + 1).astype(np.int64)


def semantic_scores(cm: np.ndarray) -> dict[str, Any]:
    """Scores of a (C, C + 1) confusion matrix from :func:`confusion_matrix`, in percent.

    - ``pa``: pixel accuracy = correct / all counted pixels.
    - ``macc`` (MPA): mean over classes present in the ground truth of TP / (TP + FN).
    - ``iou``: per class TP / (TP + FP + FN), None where the class is absent from both ground truth and
      prediction; ``miou`` is the mean over the others. Likewise ``dice`` 2TP / (2TP + FP + FN).
    - ``precision`` TP / (TP + FP), ``recall`` TP / (TP + FN), ``f1`` 2PR / (P + R) per class, and their
      macro averages ``mprecision``, ``mrecall``, ``mf1`` over the classes where each is defined.
    """
    cm = np.asarray(cm, dtype=np.float64)
    c = cm.shape[0]
    tp = np.diag(cm[:, :c])
    gt_total = cm.sum(axis=1)
    fp = cm[:, :c].sum(axis=0) - tp
    fn = gt_total - tp
    total = gt_total.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(gt_total > 0, tp / gt_total, np.nan)
        iou_c = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        pr = precision + recall
        f1 = np.where(pr > 0, 2 * precision * recall / pr, np.where(np.isnan(pr), np.nan, 0.0))

    def mean(x: np.ndarray) -> float:
        return float(100 * np.nanmean(x)) if np.isfinite(x).any() else float("nan")

    def per_class(x: np.ndarray) -> list:
        return [None if np.isnan(v) else float(100 * v) for v in x]

    return {"pa": float(100 * tp.sum() / total) if total else float("nan"), "macc": mean(recall),
            "miou": mean(iou_c), "mdice": mean(dice), "mprecision": mean(precision),
            "mrecall": mean(recall), "mf1": mean(f1), "iou": per_class(iou_c),
            "acc": per_class(recall), "dice": per_class(dice), "precision": per_class(precision),
            "recall": per_class(recall), "f1": per_class(f1)}


def multiclass_boundary_accuracy(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                                 ignore_index: int | None = None) -> float:
    """Multi-class mBA in [0, 1]: :func:`boundary_accuracy` of each class present in the ground truth
    (its binary mask vs the prediction's), averaged over those classes. Pixels whose ground truth is
    ``ignore_index`` are set to agree with the ground truth before scoring, so they never count.
    Returns NaN when no class is present."""
    p, g = np.asarray(pred), np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    if ignore_index is not None:
        p = np.where(g == ignore_index, g, p)
    scores = []
    for k in range(num_classes):
        gk = g == k
        if gk.any():
            scores.append(boundary_accuracy(p == k, gk))
    return float(np.mean(scores)) if scores else float("nan")


@dataclass
class SemanticScores:
    """Accumulates a dataset confusion matrix, per-image scores and multi-class mBA."""

    num_classes: int
    ignore_index: int | None = None
    cm: np.ndarray | None = None
    per_image: list[dict[str, Any]] = field(default_factory=list)
    bas: list[float] = field(default_factory=list)

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        cm = confusion_matrix(pred, gt, self.num_classes, self.ignore_index)
        self.cm = cm if self.cm is None else self.cm + cm
        self.per_image.append(semantic_scores(cm))
        self.bas.append(multiclass_boundary_accuracy(pred, gt, self.num_classes, self.ignore_index))

    def summary(self) -> dict[str, Any]:
        """Dataset scores (from the summed confusion matrix), per-image means (``image_*``) and
        ``mba`` (mean over images of the multi-class mBA), all in percent."""
        if self.cm is None:
            raise ValueError("no images scored")
        out = semantic_scores(self.cm)
        for k in ("pa", "macc", "miou", "mdice", "mf1"):
            out[f"image_{k}"] = float(np.nanmean([s[k] for s in self.per_image]))
        out["mba"] = float(100 * np.nanmean(self.bas))
        out["n"] = len(self.per_image)
        return out
