"""SAM-SR v1: SAM's automatic masks that the coarse mask covers replace it; the refiner is a CRM.

The stage keeps the SAM masks that lie mostly inside the coarse mask and gives their union to the
refiner in place of the coarse mask, unless the coarse mask is sparse or the union deforms it too
much (:func:`v1_mask`; then the coarse mask is used as it is). Only the refiner's input changes, so a
CRM checkpoint runs as v1 too. Its settings are the ``sam.v1`` section of a config (:class:`V1Config`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import SamSrError
from ..models.crm import CRM, CRMConfig
from ..sam.source import segmentations
from ..sam.stage import SamStage
from .spec import VariantSpec


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
    for seg in segmentations(masks, c.shape):
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


class SamUnionStage(SamStage):
    """The coarse mask replaced by the union of the automatic SAM masks it covers (with fallbacks);
    ``info`` is :func:`v1_mask`'s (``used_sam``, ``reason``, ...). Settings: ``v1`` (:class:`V1Config`
    fields)."""

    uses_masks = True
    optional = True
    setting_keys = ("v1",)

    def __call__(self, source, image, coarse, rng=None):
        try:
            cfg = V1Config(**dict(self.settings.get("v1") or {}))
        except TypeError as exc:
            raise SamSrError(f"bad sam.v1 settings: {exc}") from None
        union, info = v1_mask(np.asarray(coarse) >= 0.5, source.masks(image), cfg)
        return (union.astype(np.float32) if info["used_sam"] else coarse), None, info


SPEC = VariantSpec(
    name="v1", model=CRM, config=CRMConfig, defaults={"extra_channels": 0}, fixed=("extra_channels",),
    sam_stage=SamUnionStage, runs_checkpoints_of=("crm",), default_checkpoint="weights/crm_r18.pt",
    summary="the union of SAM's automatic masks covered by the coarse mask replaces it (a CRM refiner)")
