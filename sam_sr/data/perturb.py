"""Coarse-mask synthesis for training: perturb a ground-truth mask towards a target IoU.

Modes:
- ``perturb``: CascadePSP's perturbation (Cheng et al., CVPR 2020), our implementation: contour
  simplification (drop a run of 10% of each contour's vertices, keep a random 10% of the rest, redraw),
  then random local dilation/erosion rectangles (kernel 3-9, rectangular or elliptical; with probability
  0.25 the rectangle's centre pixel is flipped, making holes and islands), applied one rectangle at a
  time until IoU with the ground truth falls below the target.
- ``scale_gap``: downsample by k (area) and upsample (bilinear), as a segmenter run at low resolution.
- ``soft``: a Gaussian-blurred probability map.
- ``missing_part``: a random part of the object is removed (segmenters miss parts).
- ``spurious``: random blobs are added away from the object (false positives).
- ``right``: the ground truth itself (blurred with ``soft_prob``), so that a refiner learns to leave
  a boundary that is already right where it is (off unless a config weights it).
- ``fill_holes``: the truth's enclosed holes filled (each with probability 0.7, at least one); a truth
  without holes gets the gaps between its thin parts closed instead (a morphological closing), as a
  segmenter fills a bicycle's wheels or the ground between a horse's legs (off unless weighted).
- ``open_holes``: holes cut inside the object, each kept away from its outline so that it is
  enclosed, until IoU falls below a target in ``low_iou_range`` (off unless weighted). With
  ``fill_holes`` the refiner sees holes wrong in both directions (issue 22: holes and thin parts).
The ``missing_part`` and ``spurious`` modes perturb towards a lower target IoU (default down to 0.5) so the refiner learns when not
to trust the coarse mask.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean/0-1 masks of equal shape; 1.0 when both are empty."""
    a, b = a > 0, b > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def simplify_contours(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CascadePSP-style contour simplification of a uint8 {0,1} mask; returns uint8 {0,1}."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask, dtype=np.uint8)
    polys = []
    for c in contours:
        n = len(c)
        if n < 10:
            polys.append(c)
            continue
        run = max(1, n // 10)
        start = int(rng.integers(0, n))
        keep = np.ones(n, bool)
        keep[(start + np.arange(run)) % n] = False
        rest = np.flatnonzero(keep)
        k = max(3, len(rest) // 10)
        chosen = np.sort(rng.choice(rest, size=min(k, len(rest)), replace=False))
        polys.append(c[chosen])
    cv2.fillPoly(out, polys, 1)
    return out


def _random_rect_op(mask: np.ndarray, rng: np.random.Generator, max_frac: float = 0.25) -> None:
    """In place: dilate or erode one random rectangle near the boundary; maybe flip its centre."""
    h, w = mask.shape
    ys, xs = np.nonzero(cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    if len(ys):
        i = int(rng.integers(0, len(ys)))
        cy, cx = int(ys[i]), int(xs[i])
    else:
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    rh = int(rng.integers(max(2, h // 20), max(3, int(h * max_frac)) + 1))
    rw = int(rng.integers(max(2, w // 20), max(3, int(w * max_frac)) + 1))
    y0, x0 = max(0, cy - rh // 2), max(0, cx - rw // 2)
    y1, x1 = min(h, y0 + rh), min(w, x0 + rw)
    ks = int(rng.integers(3, 10))
    shape = cv2.MORPH_RECT if rng.random() < 0.5 else cv2.MORPH_ELLIPSE
    kernel = cv2.getStructuringElement(shape, (ks, ks))
    region = mask[y0:y1, x0:x1]
    op = cv2.dilate if rng.random() < 0.5 else cv2.erode
    region[:] = op(region, kernel)
    if rng.random() < 0.25:
        r = max(1, ks // 2)
        cy2, cx2 = (y0 + y1) // 2, (x0 + x1) // 2
        val = 1 - int(mask[cy2, cx2])
        cv2.circle(mask, (cx2, cy2), r, val, -1)


def perturb_to_iou(gt: np.ndarray, target_iou: float, rng: np.random.Generator,
                   max_ops: int = 1000) -> np.ndarray:
    """CascadePSP-style perturbation of a binary mask until IoU with ``gt`` < ``target_iou``.

    Args:
        gt: (H, W) mask, nonzero = foreground.
        target_iou: stop once IoU falls below this (0 < target <= 1).
        max_ops: at most this many rectangle operations (CascadePSP: 250 rounds x 4).

    Returns:
        uint8 (H, W) in {0, 1}.
    """
    g = (gt > 0).astype(np.uint8)
    m = simplify_contours(g, rng) if g.any() else g.copy()
    if target_iou >= 1.0:
        return m
    for _ in range(max_ops):
        if mask_iou(m, g) < target_iou:
            break
        _random_rect_op(m, rng)
    return m


def scale_gap(gt: np.ndarray, factor: int, soft: bool = False) -> np.ndarray:
    """Downsample ×factor (area) and upsample (bilinear) a mask: a segmenter run at low resolution.

    Returns float32 (H, W) in [0, 1] when ``soft``, else uint8 {0, 1} thresholded at 0.5.
    """
    h, w = gt.shape
    g = (gt > 0).astype(np.float32)
    small = cv2.resize(g, (max(1, round(w / factor)), max(1, round(h / factor))),
                       interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return up if soft else (up >= 0.5).astype(np.uint8)


def blocky(gt: np.ndarray, factor: int) -> np.ndarray:
    """Downsample ×factor (area, thresholded at 0.5) and upsample by nearest neighbour: a segmenter's
    low-resolution label output resized as many pipelines resize it, whose boundary is a staircase of
    period ``factor`` px (:func:`sam_sr.inference.staircase.staircase_period` finds it).

    Returns uint8 (H, W) in {0, 1}.
    """
    h, w = gt.shape
    small = cv2.resize((gt > 0).astype(np.float32), (max(1, round(w / factor)), max(1, round(h / factor))),
                       interpolation=cv2.INTER_AREA) >= 0.5
    return cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)


def _remove_part(g: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    m = g.copy()
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return m
    h, w = m.shape
    for _ in range(20):
        i = int(rng.integers(0, len(ys)))
        r = int(rng.uniform(0.1, 0.4) * np.sqrt(len(ys)))
        trial = m.copy()
        cv2.ellipse(trial, (int(xs[i]), int(ys[i])), (max(2, r), max(2, int(r * rng.uniform(0.5, 1.5)))),
                    float(rng.uniform(0, 180)), 0, 360, 0, -1)
        if trial.any():
            m = trial
        if mask_iou(m, g) < target:
            break
    return m


def enclosed_holes(mask: np.ndarray) -> np.ndarray:
    """The enclosed holes of a mask: background pixels (4-connected) that cannot reach the image's
    border. bool (H, W); ``mask`` nonzero = foreground. Also v5's hole test at inference
    (:func:`sam_sr.variants.v5.changes.holes`)."""
    n, labels = cv2.connectedComponents((mask == 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    inner = np.ones(n, bool)
    inner[border] = False
    inner[0] = False                       # label 0: the mask itself
    return inner[labels]


def fill_holes(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``fill_holes`` mode (module docstring): uint8 (H, W) in {0, 1}, never smaller than ``gt``."""
    g = (gt > 0).astype(np.uint8)
    holes = enclosed_holes(g)
    if holes.any():
        n, labels = cv2.connectedComponents(holes.astype(np.uint8), connectivity=4)
        pick = rng.random(n - 1) < 0.7
        pick[int(rng.integers(0, n - 1))] = True
        return (g | np.isin(labels, 1 + np.flatnonzero(pick))).astype(np.uint8)
    area = int(g.sum())
    if area == 0:
        return g
    k = 2 * max(1, int(rng.uniform(0.05, 0.2) * np.sqrt(area))) + 1
    padded = cv2.copyMakeBorder(g, k, k, k, k, cv2.BORDER_CONSTANT, value=0)   # no fill against the frame
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return (closed[k:-k, k:-k] | g).astype(np.uint8)


def open_holes(gt: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """``open_holes`` mode (module docstring): uint8 (H, W) in {0, 1}, never larger than ``gt``; each
    hole lies at least 2 px inside the outline. ``gt`` unchanged when the object has no interior."""
    g = (gt > 0).astype(np.uint8)
    area = int(g.sum())
    if area == 0:
        return g
    margin = max(2, int(0.03 * np.sqrt(area)))
    interior = cv2.erode(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    ys, xs = np.nonzero(interior)
    if len(ys) == 0:
        return g
    m = g.copy()
    for _ in range(20):
        i = int(rng.integers(0, len(ys)))
        r = max(2, int(rng.uniform(0.03, 0.15) * np.sqrt(area)))
        cut = np.zeros_like(g)
        cv2.ellipse(cut, (int(xs[i]), int(ys[i])), (r, max(2, int(r * rng.uniform(0.5, 1.5)))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        m[(cut > 0) & (interior > 0)] = 0
        if mask_iou(m, g) < target:
            break
    return m


def _add_blobs(g: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    m = g.copy()
    h, w = m.shape
    area = max(int(g.sum()), h * w // 50)
    for _ in range(20):
        r = int(rng.uniform(0.1, 0.3) * np.sqrt(area))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.ellipse(m, (cx, cy), (max(2, r), max(2, int(r * rng.uniform(0.5, 1.5)))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        if mask_iou(m, g) < target:
            break
    return m


@dataclass
class CoarseMaskSynthesizer:
    """Random coarse mask from a ground truth, mixing the modes of this module.

    Args:
        iou_range: target IoU range for ``perturb`` (CRM/CascadePSP: (0.8, 1.0)).
        low_iou_range: target IoU range for ``missing_part``, ``spurious`` and ``open_holes``.
        scale_factors: k choices for ``scale_gap``.
        mode_weights: relative probability of each mode.
        soft_prob: probability that the result is blurred into a soft map (cascade steps feed soft maps).

    Calling it returns float32 (H, W) in [0, 1].
    """

    iou_range: tuple[float, float] = (0.8, 1.0)
    low_iou_range: tuple[float, float] = (0.5, 0.85)
    scale_factors: tuple[int, ...] = (4, 8, 16)
    mode_weights: dict[str, float] = field(default_factory=lambda: {
        "perturb": 0.5, "scale_gap": 0.2, "missing_part": 0.1, "spurious": 0.1, "soft": 0.1})
    soft_prob: float = 0.2

    def __call__(self, gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        g = (gt > 0).astype(np.uint8)
        modes = list(self.mode_weights)
        p = np.array([self.mode_weights[k] for k in modes], float)
        mode = modes[int(rng.choice(len(modes), p=p / p.sum()))]
        if mode == "perturb":
            out = perturb_to_iou(g, float(rng.uniform(*self.iou_range)), rng).astype(np.float32)
        elif mode == "scale_gap":
            k = int(rng.choice(self.scale_factors))
            out = scale_gap(g, k, soft=rng.random() < 0.5).astype(np.float32)
        elif mode == "missing_part":
            out = _remove_part(g, float(rng.uniform(*self.low_iou_range)), rng).astype(np.float32)
        elif mode == "spurious":
            out = _add_blobs(g, float(rng.uniform(*self.low_iou_range)), rng).astype(np.float32)
        elif mode == "right":   # the truth itself: a boundary that is already right must stay
            out = g.astype(np.float32)
        elif mode == "fill_holes":
            out = fill_holes(g, rng).astype(np.float32)
        elif mode == "open_holes":
            out = open_holes(g, float(rng.uniform(*self.low_iou_range)), rng).astype(np.float32)
        elif mode == "soft":
            base = perturb_to_iou(g, float(rng.uniform(*self.iou_range)), rng).astype(np.float32)
            s = max(1.0, rng.uniform(0.005, 0.03) * max(g.shape))
            return cv2.GaussianBlur(base, (0, 0), s)
        else:
            raise ValueError(f"unknown coarse-mask mode {mode!r}")
        if rng.random() < self.soft_prob:
            out = cv2.GaussianBlur(out, (0, 0), max(1.0, rng.uniform(0.003, 0.02) * max(g.shape)))
        return out
