"""Region-level changes of SAM-SR v5 and what inference knows about each: the evidence its learned
keep-or-change decision reads.

A change is a connected part (8-connected, OpenCV) of the region step's disagreement with the coarse
mask that survives the opening of :func:`sam_sr.variants.v4.region_step.compose`: an *addition*
(region mask on, coarse mask off) or a *removal* (the reverse). Each change gets the features of
:data:`CHANGE_FEATURES`, the photo those of :data:`PHOTO_FEATURES` (the photo's features are also
appended to each change's). Features use only what inference sees: the coarse mask, the region
network's logits, SAM's two answers and their predicted IoU, never the ground truth.

Costs stay bounded at 6k px: the coarse mask's holes and thickness are measured on a copy whose
longer side is at most :data:`WORK_SIDE` px, and each change's statistics on at most
:data:`SAMPLES` of its pixels (a fixed stride: deterministic).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...data.perturb import enclosed_holes as holes  # the enclosed holes of a mask, bool (H, W)

#: Longer side (px) of the working copy on which the coarse mask's holes and thickness are measured.
WORK_SIDE = 1024
#: At most this many pixels of a change are read for its statistics.
SAMPLES = 8192

CHANGE_FEATURES = (
    "is_addition",          # 1 for an addition, 0 for a removal
    "log_area_vs_coarse",   # log of the change's area over the coarse mask's area
    "log_area_vs_photo",    # log of the change's area over the photo's
    "region_margin",        # mean region logit on the change's side, / 10, clipped to [-2, 2]
    "region_confident",     # share of its pixels with a region logit beyond +-2 on the change's side
    "sam1_agrees",          # share of its pixels where SAM's first answer takes the change's side
    "sam2_agrees",          # ... SAM's second answer (the coarse mask as a dense prompt)
    "fills_hole",           # share of an addition inside an enclosed hole of the coarse mask
    "thickness",            # a removal's largest coarse-mask thickness inside it, over sqrt(coarse area)
    "touches_border",       # the change touches the photo's border
    "coarse_soft_inside",   # share of its pixels where the coarse mask is soft (between 0.05 and 0.95)
)
PHOTO_FEATURES = (
    "sam1_iou", "sam2_iou",             # SAM's predicted IoU of its two answers
    "sam1_stability", "sam2_stability",  # IoU of each answer thresholded at +1 and at -1 (SAM's stability)
    "sams_agree",                      # IoU of the two answers (thresholded at 0)
    "sam1_vs_coarse",                  # IoU of SAM's first answer with the coarse mask
    "region_vs_coarse",                # IoU of the region mask with the coarse mask
    "coarse_soft",                     # share of the coarse mask's pixels that are soft
    "coarse_detail",                   # 1 - IoU of the coarse mask with itself down- and upsampled x8
    "coarse_holes",                    # enclosed holes' area over the coarse mask's area
    "log_changes",                     # log(1 + number of changes)
    "changed_share",                   # the changes' area over the coarse mask's area
)
N_CHANGE, N_PHOTO = len(CHANGE_FEATURES), len(PHOTO_FEATURES)


@dataclass
class Changes:
    """The changes of one photo.

    Attributes:
        labels: int32 (H, W): 0 where nothing changes, k (1-based) on change k's pixels.
        additions: bool (K,): change k is an addition (else a removal).
        features: float32 (K, N_CHANGE + N_PHOTO): each change's features, then the photo's.
        photo: float32 (N_PHOTO,): the photo's features.
        opens_hole: float32 (K,) in [0, 1]: the share of a removal that becomes an enclosed hole of the
            mask when it is taken alone (a hole the coarse mask did not have); 0 for additions. Not a
            feature of the trees: :func:`sam_sr.variants.v5.decide`'s ``opens`` rule reads it.
    """

    labels: np.ndarray
    additions: np.ndarray
    features: np.ndarray
    photo: np.ndarray
    opens_hole: np.ndarray

    def __len__(self) -> int:
        return len(self.additions)

    def apply(self, coarse: np.ndarray, take: np.ndarray) -> np.ndarray:
        """bool (H, W): ``coarse`` (bool) with the changes ``take`` (bool (K,)) applied."""
        out = np.asarray(coarse, bool).copy()
        if len(self) == 0 or not np.any(take):
            return out
        lut = np.zeros(len(self) + 1, np.int8)           # 0 keep, 1 set, -1 clear
        lut[1:][take & self.additions] = 1
        lut[1:][take & ~self.additions] = -1
        action = lut[self.labels]
        out[action == 1] = True
        out[action == -1] = False
        return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def _work_copy(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """A bool copy with the longer side at most :data:`WORK_SIDE` (nearest), and its scale."""
    h, w = mask.shape
    s = min(1.0, WORK_SIDE / max(h, w))
    if s == 1.0:
        return mask.astype(bool), 1.0
    small = cv2.resize(mask.astype(np.uint8), (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_NEAREST)
    return small > 0, s


def _sample(idx: np.ndarray) -> np.ndarray:
    return idx if len(idx) <= SAMPLES else idx[:: -(-len(idx) // SAMPLES)]


def stability(logits: np.ndarray, offset: float = 1.0) -> float:
    """SAM's stability score of a logit map: IoU of its thresholds at +offset and -offset."""
    hi, lo = logits > offset, logits > -offset
    return float(hi.sum() / lo.sum()) if lo.any() else 1.0


def find_changes(coarse: np.ndarray, soft: np.ndarray, region_logits: np.ndarray, radius: int,
                 sam_low: list[np.ndarray], sam_ious: list[float]) -> Changes:
    """The region step's changes of one photo and their features.

    Args:
        coarse: bool (H, W), the coarse mask. soft: float32 (H, W) in [0, 1], the coarse mask as given.
        region_logits: float32 (H, W), the region network's logits at the photo's size.
        radius: px of the opening that separates region-level changes from slivers along the contour
            (:func:`sam_sr.variants.v4.region_step.compose`).
        sam_low: SAM's two answers, logits float32 on SAM's 256 x 256 grid cropped to the photo's cells
            (``lowres_shape``), read at each change's pixels (nearest cell).
        sam_ious: SAM's predicted IoU of each answer.

    Returns:
        :class:`Changes`.
    """
    c = np.asarray(coarse, bool)
    region = np.asarray(region_logits) > 0
    h, w = c.shape
    labels = np.zeros((h, w), np.int32)
    diff = region != c
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    k = 0
    if len(rows) and radius > 0:
        pad = 2 * radius + 1
        y0, y1 = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
        x0, x1 = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
        kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        opened = cv2.morphologyEx(diff[y0:y1, x0:x1].view(np.uint8), cv2.MORPH_OPEN, kern)
        k, lab = cv2.connectedComponents(opened, connectivity=8)
        k -= 1
        labels[y0:y1, x0:x1] = lab
    elif len(rows):
        k, labels = cv2.connectedComponents(diff.view(np.uint8), connectivity=8)
        k -= 1
        labels = labels.astype(np.int32)
    coarse_area = max(1, int(c.sum()))
    small, s = _work_copy(c)
    hole = holes(small)
    dist = cv2.distanceTransform(np.pad(small.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1] / s
    soft_px = (soft > 0.05) & (soft < 0.95)
    lh, lw = sam_low[0].shape
    feats = np.zeros((k, N_CHANGE), np.float32)
    additions = np.zeros(k, bool)
    flat = labels.ravel()
    # the changes' pixels grouped by label, each group in raster order: only the labelled pixels are
    # sorted (a 4k photo's 8 M pixels are mostly label 0, whose group is never read)
    nz = np.flatnonzero(flat)
    order = nz[np.argsort(flat[nz], kind="stable")]
    counts = np.bincount(flat[nz], minlength=k + 1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    total = 0
    for j in range(1, k + 1):
        idx = order[starts[j]:starts[j + 1]]
        area = len(idx)
        total += area
        ys, xs = np.unravel_index(_sample(idx), (h, w))
        add = bool(region[ys[0], xs[0]])
        additions[j - 1] = add
        sign = 1.0 if add else -1.0
        lg = region_logits[ys, xs] * sign
        sy = np.minimum((ys * s).astype(int), small.shape[0] - 1)
        sx = np.minimum((xs * s).astype(int), small.shape[1] - 1)
        ly = np.minimum((ys * (lh / h)).astype(int), lh - 1)
        lx = np.minimum((xs * (lw / w)).astype(int), lw - 1)
        feats[j - 1] = [
            float(add), np.log(area / coarse_area), np.log(area / (h * w)),
            float(np.clip(lg.mean() / 10, -2, 2)), float((lg > 2).mean()),
            float(((sam_low[0][ly, lx] > 0) == add).mean()), float(((sam_low[1][ly, lx] > 0) == add).mean()),
            float(hole[sy, sx].mean()) if add else 0.0,
            0.0 if add else float(dist[sy, sx].max() / np.sqrt(coarse_area)),
            float(ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1),
            float(soft_px[ys, xs].mean()),
        ]
    opens = _opened_holes(labels, additions, small, hole)
    from ...data.perturb import scale_gap
    a, b = (np.asarray(x) > 0 for x in sam_low[:2])
    cs = _iou(small, scale_gap(small.astype(np.uint8), 8) > 0.5)
    sam1 = cv2.resize(a.astype(np.uint8), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    reg_small = _work_copy(region)[0]
    photo = np.array([
        sam_ious[0], sam_ious[1], stability(sam_low[0]), stability(sam_low[1]), _iou(a, b),
        _iou(sam1, small), _iou(reg_small, small), min(1.0, float(soft_px.sum()) / coarse_area), 1.0 - cs,
        float(hole.sum() / max(1, small.sum())), float(np.log1p(k)), total / coarse_area,
    ], np.float32)
    full = np.concatenate([feats, np.repeat(photo[None], k, 0)], 1) if k else np.zeros((0, N_CHANGE + N_PHOTO),
                                                                                      np.float32)
    return Changes(labels, additions, full.astype(np.float32), photo, opens)


def _opened_holes(labels: np.ndarray, additions: np.ndarray, small: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """float32 (K,): for each removal, the share of its pixels that would lie in a new enclosed hole of
    the mask were it taken alone (measured on the coarse mask's working copy ``small``, whose holes are
    ``hole``); 0 for additions and for removals too small to survive the working copy's scale."""
    k = len(additions)
    out = np.zeros(k, np.float32)
    if k == 0 or additions.all():
        return out
    if labels.shape != small.shape:
        lab = cv2.resize(labels, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    else:
        lab = labels
    for j in np.flatnonzero(~additions):
        comp = lab == j + 1
        if comp.any() and (small & comp).any():
            new = holes(small & ~comp) & ~hole
            out[j] = float(new[comp].mean())
    return out
