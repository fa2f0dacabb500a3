"""SAM-SR v2.1: SAM's automatic masks painted in random colours, as 3 extra input channels of a CRM."""
from __future__ import annotations

import numpy as np

from ..models.crm import CRM, CRMConfig
from ..sam.inputs import sam_rgb_map
from ..sam.stage import SamStage
from .spec import VariantSpec


class SamRgbMapStage(SamStage):
    """Extra channels float32 (H, W, 3) in [0, 1]: the automatic SAM masks sorted by area (largest
    first) in random colours (seeded; new colours every training step)."""

    uses_masks = True

    def __call__(self, source, image, coarse, rng=None):
        rgb = sam_rgb_map(source.masks(image), np.asarray(coarse).shape, self.seed(rng))
        return coarse, rgb.astype(np.float32) / 255.0, {}


class SamSrV21(CRM):
    """SAM-SR v2.1: CRM with 3 extra input channels, the RGB map of SAM masks."""

    variant = "v2.1"


SPEC = VariantSpec(
    name="v2.1", model=SamSrV21, config=CRMConfig, defaults={"extra_channels": 3}, fixed=("extra_channels",),
    extra_channels=3, sam_stage=SamRgbMapStage,
    summary="SAM's automatic masks in random colours as 3 extra input channels")
