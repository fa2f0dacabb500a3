"""SAM-SR v2.2: SAM re-prompted with points of the coarse mask, its vote as 1 extra input channel.

Points sampled from the coarse mask are grouped in threes as prompts; each prompt's best mask (by
SAM's predicted IoU) is merged by a predicted-IoU-weighted vote into one SAM mask (:func:`v22_mask`).
Its setting is ``sam.n_points`` (a multiple of 3, default 9).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import SamSrError
from ..models.crm import CRM, CRMConfig
from ..sam.stage import SamStage
from .spec import VariantSpec


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


class SamPromptVoteStage(SamStage):
    """Extra channel float32 (H, W, 1) in [0, 1]: ``n_points`` points sampled inside the coarse mask,
    in groups of three, each group's best SAM mask merged by a predicted-IoU-weighted vote
    (:func:`v22_mask`). In training only SAM's prompt decoder runs, on the cached embedding."""

    uses_embedding = True
    setting_keys = ("n_points",)

    def __call__(self, source, image, coarse, rng=None):
        seed = self.seed(rng)
        vote = v22_mask(source.predictor(image), image, np.asarray(coarse) >= 0.5,
                        int(self.settings.get("n_points", 9)), seed, image_is_set=True)
        return coarse, vote[..., None], {}


SPEC = VariantSpec(
    name="v2.2", model=CRM, config=CRMConfig, defaults={"extra_channels": 1}, fixed=("extra_channels",),
    extra_channels=1, sam_stage=SamPromptVoteStage,
    summary="SAM prompted with points of the coarse mask; its vote as 1 extra input channel")
