"""SAM-SR v1: SAM's automatic masks that the coarse mask covers replace it; the refiner is a CRM.

The stage keeps the SAM masks that lie mostly inside the coarse mask and gives their union to the
refiner in place of the coarse mask, unless the coarse mask is sparse or the union deforms it too
much (:func:`sam_sr.sam.inputs.v1_mask`). Only the refiner's input changes, so a CRM checkpoint runs
as v1 too.
"""
from __future__ import annotations

import numpy as np

from ..models.crm import CRM, CRMConfig
from ..sam.inputs import v1_mask
from ..sam.stage import SamStage
from .spec import VariantSpec


class SamUnionStage(SamStage):
    """The coarse mask replaced by the union of the automatic SAM masks it covers (with fallbacks);
    ``info`` is :func:`v1_mask`'s (``used_sam``, ``reason``, ...)."""

    uses_masks = True

    def __call__(self, source, image, coarse, rng=None):
        union, info = v1_mask(np.asarray(coarse) >= 0.5, source.masks(image), self.settings.v1)
        return (union.astype(np.float32) if info["used_sam"] else coarse), None, info


class SamSrV1(CRM):
    """SAM-SR v1: a CRM refiner whose coarse mask is replaced by a union of SAM masks."""

    variant = "v1"


SPEC = VariantSpec(
    name="v1", model=SamSrV1, config=CRMConfig, defaults={"extra_channels": 0}, fixed=("extra_channels",),
    sam_stage=SamUnionStage, runs_checkpoints_of=("crm",), default_checkpoint="weights/crm_r18.pt",
    summary="the union of SAM's automatic masks covered by the coarse mask replaces it (a CRM refiner)")
