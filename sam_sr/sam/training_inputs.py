"""SAM-derived inputs for training the SAM-SR variants, read from the SAM cache.

Training never runs SAM's image encoder: ``scripts/precompute_sam.py`` caches every training image's
embedding and automatic masks first, and a missing entry is an error. What each variant gets:

- v1: the coarse mask replaced by the union of cached SAM masks it covers (:func:`v1_mask`);
- v2.1: the RGB map of cached SAM masks, with new random colours every time (an augmentation);
- v2.2: SAM re-prompted with points of the (synthesised or real) coarse mask. Only SAM's prompt
  encoder and mask decoder run, on the cached embedding (a few milliseconds per prompt), because the
  synthesised coarse masks change every step;
- v3.x: the cached embedding itself (float16 (1, 256, 64, 64)).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import SamSrError
from .cache import SamCache
from .inputs import V1Config, sam_rgb_map, v1_mask, v22_mask


def _no_sam(image: np.ndarray):
    raise SamSrError("SAM masks of a training image are not cached; run scripts/precompute_sam.py "
                     "with this config first")


class SamTrainingInputs:
    """Callable ``(image, coarse, rng) -> (coarse, extra, embedding)``.

    Args:
        variant: ``v1``, ``v2.1``, ``v2.2`` or ``v3.x``.
        cache: the :class:`SamCache` filled by ``scripts/precompute_sam.py``.
        sam_type, sam_checkpoint: the SAM model (v2.2 loads it lazily, once per worker, for its
            prompt decoder).
        points_per_side: grid of the cached automatic masks. ``n_points``: v2.2 prompt points.

    Call arguments: image uint8 (H, W, 3); coarse float32 (H, W) in [0, 1]; a numpy Generator.
    Returns: coarse float32 (H, W) (v1: SAM's union where it is used), ``extra`` float32 (H, W, C)
    in [0, 1] or None, ``embedding`` float32 tensor (1, 256, 64, 64) or None.
    """

    def __init__(self, variant: str, cache: SamCache, sam_type: str = "vit_t",
                 sam_checkpoint: str | None = None, points_per_side: int = 8, n_points: int = 9,
                 v1: V1Config | None = None):
        if variant not in ("v1", "v2.1", "v2.2") and not variant.startswith("v3"):
            raise SamSrError(f"no SAM training inputs for variant {variant!r}")
        self.variant, self.cache = variant, cache
        self.sam_type, self.sam_checkpoint = sam_type, sam_checkpoint
        self.kind = f"masks-p{points_per_side}"
        self.n_points = n_points
        self.v1 = v1 or V1Config()
        self._predictor = None

    def _masks(self, image: np.ndarray) -> list[dict[str, Any]]:
        return self.cache.masks(image, _no_sam, self.kind)

    def _v22_predictor(self):
        if self._predictor is None:
            from .loader import load_sam, predictor
            if not self.sam_checkpoint:
                raise SamSrError("v2.2 training needs sam.checkpoint (for SAM's prompt decoder)")
            self._predictor = predictor(load_sam(self.sam_type, self.sam_checkpoint, "cpu"))
        return self._predictor

    def __call__(self, image: np.ndarray, coarse: np.ndarray, rng: np.random.Generator):
        shape = coarse.shape
        if self.variant == "v1":
            union, info = v1_mask(coarse >= 0.5, self._masks(image), self.v1)
            return (union.astype(np.float32) if info["used_sam"] else coarse), None, None
        if self.variant == "v2.1":
            rgb = sam_rgb_map(self._masks(image), shape, int(rng.integers(0, 2**31 - 1)))
            return coarse, rgb.astype(np.float32) / 255.0, None
        if not self.cache.has(image, "embedding"):
            _no_sam(image)
        if self.variant == "v2.2":
            pred = self._v22_predictor()
            self.cache.set_predictor_image(pred, image)
            vote = v22_mask(pred, image, coarse >= 0.5, self.n_points, int(rng.integers(0, 2**31 - 1)),
                            image_is_set=True)
            return coarse, vote[..., None], None
        emb = torch.from_numpy(self.cache.embedding(image)["features"].astype(np.float32))
        return coarse, None, emb
