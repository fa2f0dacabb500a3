"""Binary segmentation metrics: IoU (per image and dataset-cumulative) and mBA.

mBA follows CascadePSP (Cheng et al., CVPR 2020), as used by CRM: five radii
``r_i = 1 + int((max_r - 1) / 5 * i)``, ``i = 0..4``, with ``max_r = (W + H) / 300``; the boundary band
is the morphological gradient of the ground truth with an elliptical kernel of size ``2r + 1``; the
score is the fraction of band pixels where the prediction equals the ground truth, averaged over the
radii (and then over images).
"""
from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class BinaryScores:
    """Accumulates per-image IoU and mBA and the dataset-cumulative intersection/union."""

    ious: list[float] = field(default_factory=list)
    bas: list[float] = field(default_factory=list)
    inter: int = 0
    union: int = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        i, u = intersection_union(pred, gt)
        self.inter += i
        self.union += u
        self.ious.append(1.0 if u == 0 else i / u)
        self.bas.append(boundary_accuracy(pred, gt))

    def summary(self) -> dict[str, float]:
        """``{"n", "iou_mean", "iou_cumulative", "mba"}``; IoU/mBA in percent (0..100)."""
        n = len(self.ious)
        return {"n": n,
                "iou_mean": 100 * float(np.mean(self.ious)) if n else float("nan"),
                "iou_cumulative": 100 * self.inter / self.union if self.union else float("nan"),
                "mba": 100 * float(np.mean(self.bas)) if n else float("nan")}
