"""SAM-SR input pipelines: what SAM adds to the refiner's input at inference (SAM-SR thesis).

A pipeline is called as ``pipeline(image, coarse) -> (coarse_for_refiner, extra, info)`` with
``image`` uint8 (H, W, 3), ``coarse`` bool (H, W); ``extra`` is float32 (H, W, C) in [0, 1] or None.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .inputs import V1Config, sam_rgb_map, v1_mask, v22_mask

#: variant -> number of extra input channels of its refiner (v3.x: SAM's 256-channel embedding).
EXTRA_CHANNELS = {"crm": 0, "v1": 0, "v2.1": 3, "v2.2": 1, "v3.1": 256, "v3.2": 256, "v3.3": 256,
                  "v3.4": 256}
#: variants that need SAM.
SAM_VARIANTS = ("v1", "v2.1", "v2.2", "v3.1", "v3.2", "v3.3", "v3.4")


class SamPipeline:
    """SAM inputs for one variant.

    Args:
        variant: ``v1``, ``v2.1``, ``v2.2`` or ``v3.x`` (v3.x: ``extra`` is SAM's image embedding,
            a float32 tensor (1, 256, 64, 64), instead of a per-pixel map).
        sam: a loaded SAM / MobileSAM model (:func:`sam_sr.sam.load_sam`).
        cache: optional :class:`sam_sr.sam.cache.SamCache` for masks and embeddings.
        points_per_side: automatic-mask point grid (v1, v2.1).
        v1: :class:`V1Config` thresholds. ``n_points``: v2.2 prompt points. ``seed``: colours, points.
    """

    def __init__(self, variant: str, sam, cache=None, points_per_side: int = 16,
                 v1: V1Config | None = None, n_points: int = 9, seed: int = 0):
        from . import mask_generator, predictor
        if variant not in SAM_VARIANTS:
            raise ValueError(f"no SAM pipeline for variant {variant!r}")
        self.variant, self.cache, self.seed, self.n_points = variant, cache, seed, n_points
        self.v1 = v1 or V1Config()
        self.mask_kind = f"masks-p{points_per_side}"
        automatic = variant in ("v1", "v2.1")
        self.generator = mask_generator(sam, points_per_side=points_per_side) if automatic else None
        self.predictor = None if automatic else predictor(sam)

    def _masks(self, image: np.ndarray) -> list[dict[str, Any]]:
        if self.cache is not None:
            return self.cache.masks(image, self.generator.generate, self.mask_kind)
        return self.generator.generate(image)

    def __call__(self, image: np.ndarray, coarse: np.ndarray):
        if self.variant == "v1":
            mask, info = v1_mask(coarse, self._masks(image), self.v1)
            return mask, None, info
        if self.variant == "v2.1":
            rgb = sam_rgb_map(self._masks(image), coarse.shape, self.seed)
            return coarse, rgb.astype(np.float32) / 255.0, {}
        if self.cache is not None:
            self.cache.set_predictor_image(self.predictor, image)
        else:
            self.predictor.set_image(image)
        if self.variant.startswith("v3"):
            return coarse, self.predictor.features.float(), {}
        vote = v22_mask(self.predictor, image, coarse, self.n_points, self.seed, image_is_set=True)
        return coarse, vote[..., None], {}
