"""SAM-SR v2.1: SAM's automatic masks painted in random colours, as 3 extra input channels of a CRM."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..models.crm import CRM, CRMConfig
from ..sam.source import segmentations
from ..sam.stage import SamStage
from .spec import VariantSpec


def sam_rgb_map(masks: Sequence[dict[str, Any]], shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """v2.1 input: uint8 (H, W, 3). Masks are painted largest first with random colours (seeded),
    so smaller masks stay visible on top; pixels in no mask are black."""
    rng = np.random.default_rng(seed)
    out = np.zeros((*shape, 3), np.uint8)
    segs = segmentations(masks, shape)
    for i in np.argsort([-int(s.sum()) for s in segs], kind="stable"):
        out[segs[i]] = rng.integers(32, 256, 3, dtype=np.uint8)
    return out


class SamRgbMapStage(SamStage):
    """Extra channels float32 (H, W, 3) in [0, 1]: the automatic SAM masks sorted by area (largest
    first) in random colours (seeded; new colours every training step)."""

    uses_masks = True

    def __call__(self, source, image, coarse, rng=None):
        rgb = sam_rgb_map(source.masks(image), np.asarray(coarse).shape, self.seed(rng))
        return coarse, rgb.astype(np.float32) / 255.0, {}


SPEC = VariantSpec(
    name="v2.1", model=CRM, config=CRMConfig, defaults={"extra_channels": 3}, fixed=("extra_channels",),
    extra_channels=3, sam_stage=SamRgbMapStage,
    summary="SAM's automatic masks in random colours as 3 extra input channels")
