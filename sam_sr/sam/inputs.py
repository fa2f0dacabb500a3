"""SAM-derived inputs of the SAM-SR variants (SAM-SR thesis).

- v1: keep the automatic SAM masks that the coarse mask covers enough and give their union to the
  refiner in place of the coarse mask, unless the coarse mask is sparse or the union deforms it too
  much (then the coarse mask is used as it is).
- v2.1: SAM masks sorted by area (largest first) and painted with random colours into an RGB map,
  given to the refiner as 3 extra input channels.
- v2.2: points sampled from the coarse mask, grouped in threes as prompts; each prompt's best mask
  (by SAM's predicted IoU) is merged by a predicted-IoU-weighted vote into one SAM mask, given to the
  refiner as 1 extra input channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import SamSrError


def _segs(masks: Sequence[dict[str, Any]], shape: tuple[int, int]) -> list[np.ndarray]:
    out = []
    for m in masks:
        seg = np.asarray(m["segmentation"], bool)
        if seg.shape != tuple(shape):
            raise SamSrError(f"SAM mask {seg.shape} does not match the image {tuple(shape)}")
        out.append(seg)
    return out


def sam_rgb_map(masks: Sequence[dict[str, Any]], shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """v2.1 input: uint8 (H, W, 3). Masks are painted largest first with random colours (seeded),
    so smaller masks stay visible on top; pixels in no mask are black."""
    rng = np.random.default_rng(seed)
    out = np.zeros((*shape, 3), np.uint8)
    segs = _segs(masks, shape)
    for i in np.argsort([-int(s.sum()) for s in segs], kind="stable"):
        out[segs[i]] = rng.integers(32, 256, 3, dtype=np.uint8)
    return out


@dataclass
class V1Config:
    """v1 thresholds.

    Args:
        min_cover: a SAM mask is kept when at least this share of it lies inside the coarse mask.
        sparsity_min: sparsity coefficient = coarse area / area of its bounding box; below this the
            coarse mask is sparse (thin, scattered) and SAM is skipped.
        deformation_max: deformation coefficient = 1 - IoU(union of kept SAM masks, coarse mask);
            above this SAM's union deforms the coarse mask too much and SAM is skipped.
    """

    min_cover: float = 0.5
    sparsity_min: float = 0.1
    deformation_max: float = 0.3


def v1_mask(coarse: np.ndarray, masks: Sequence[dict[str, Any]],
            config: V1Config | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """v1: the coarse mask replaced by the union of the SAM masks it covers, with fallbacks.

    Args:
        coarse: (H, W) binary coarse mask (nonzero = foreground).
        masks: automatic SAM masks (dicts with ``segmentation``).

    Returns:
        (bool (H, W) mask for the refiner, info) where info has ``used_sam``, ``reason``,
        ``sparsity``, ``deformation`` and ``kept`` (number of SAM masks in the union).
    """
    cfg = config or V1Config()
    c = np.asarray(coarse) > 0
    info: dict[str, Any] = {"used_sam": False, "sparsity": None, "deformation": None, "kept": 0}
    if not c.any():
        return c, {**info, "reason": "empty coarse mask"}
    ys, xs = np.nonzero(c)
    sparsity = float(c.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))
    info["sparsity"] = sparsity
    if sparsity < cfg.sparsity_min:
        return c, {**info, "reason": f"sparse coarse mask ({sparsity:.3f} < {cfg.sparsity_min})"}
    union = np.zeros_like(c)
    for seg in _segs(masks, c.shape):
        area = seg.sum()
        if area and (seg & c).sum() / area >= cfg.min_cover:
            union |= seg
            info["kept"] += 1
    if not union.any():
        return c, {**info, "reason": "no SAM mask covered by the coarse mask"}
    deformation = 1.0 - float((union & c).sum() / (union | c).sum())
    info["deformation"] = deformation
    if deformation > cfg.deformation_max:
        return c, {**info, "reason": f"SAM union deforms the mask ({deformation:.3f} > {cfg.deformation_max})"}
    return union, {**info, "used_sam": True, "reason": "ok"}


def sample_points(coarse: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` (x, y) points inside the coarse mask, float32 (n, 2), drawn with probability
    proportional to the distance from the mask's boundary (so points avoid uncertain edges)."""
    c = (np.asarray(coarse) > 0).astype(np.uint8)
    if not c.any():
        raise SamSrError("cannot sample prompt points from an empty coarse mask")
    dist = cv2.distanceTransform(np.pad(c, 1), cv2.DIST_L2, 3)[1:-1, 1:-1].ravel()
    p = dist / dist.sum()
    idx = rng.choice(len(p), size=n, replace=len(np.flatnonzero(p)) < n, p=p)
    ys, xs = np.unravel_index(idx, c.shape)
    return np.stack([xs, ys], axis=1).astype(np.float32)


def v22_mask(predictor, image: np.ndarray, coarse: np.ndarray, n_points: int = 9, seed: int = 0,
             image_is_set: bool = False) -> np.ndarray:
    """v2.2: SAM re-prompted with points from the coarse mask.

    ``n_points`` points (a multiple of 3) are sampled inside the coarse mask and grouped in threes;
    each group prompts SAM (3 candidates, the best by predicted IoU is kept); the kept masks are
    merged by a vote weighted by their predicted IoU.

    Returns:
        float32 (H, W) in [0, 1]: the weighted vote (>= 0.5 = SAM's merged mask). An empty coarse
        mask gives zeros.
    """
    c = np.asarray(coarse) > 0
    if n_points < 3 or n_points % 3:
        raise SamSrError("v2.2 needs a positive multiple of 3 prompt points")
    if not c.any():
        return np.zeros(c.shape, np.float32)
    if not image_is_set:
        predictor.set_image(image)
    pts = sample_points(c, n_points, np.random.default_rng(seed))
    vote = np.zeros(c.shape, np.float32)
    weight = 0.0
    for g in range(0, n_points, 3):
        masks, scores, _ = predictor.predict(point_coords=pts[g:g + 3], point_labels=np.ones(3, np.int64),
                                             multimask_output=True)
        k = int(np.argmax(scores))
        vote += float(scores[k]) * masks[k].astype(np.float32)
        weight += float(scores[k])
    return vote / max(weight, 1e-6)
