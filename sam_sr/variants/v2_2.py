"""SAM-SR v2.2: SAM re-prompted with points of the coarse mask, its vote as 1 extra input channel."""
from __future__ import annotations

import numpy as np

from ..models.crm import CRM, CRMConfig
from ..sam.inputs import v22_mask
from ..sam.stage import SamStage
from .spec import VariantSpec


class SamPromptVoteStage(SamStage):
    """Extra channel float32 (H, W, 1) in [0, 1]: ``n_points`` points sampled inside the coarse mask,
    in groups of three, each group's best SAM mask merged by a predicted-IoU-weighted vote
    (:func:`v22_mask`). In training only SAM's prompt decoder runs, on the cached embedding."""

    uses_embedding = True

    def __call__(self, source, image, coarse, rng=None):
        seed = self.seed(rng)
        vote = v22_mask(source.predictor(image), image, np.asarray(coarse) >= 0.5, self.settings.n_points,
                        seed, image_is_set=True)
        return coarse, vote[..., None], {}


class SamSrV22(CRM):
    """SAM-SR v2.2: CRM with 1 extra input channel, SAM's mask from points of the coarse mask."""

    variant = "v2.2"


SPEC = VariantSpec(
    name="v2.2", model=SamSrV22, config=CRMConfig, defaults={"extra_channels": 1}, fixed=("extra_channels",),
    extra_channels=1, sam_stage=SamPromptVoteStage,
    summary="SAM prompted with points of the coarse mask; its vote as 1 extra input channel")
