"""sam-prompt: the training-free SAM-SR variant. SAM (the bundled MobileSAM unless another is given) is
prompted from the coarse mask as SAMRefiner does (:mod:`sam_sr.sam.prompt`); its answer, resampled to
the photo, replaces the coarse mask, and the CRM cascade re-draws the boundary at full resolution
(SAM's mask is a 256 x 256 grid: about 14 image pixels per cell at 3.5k). It runs a CRM checkpoint
(the shipped one by default): nothing of its own is trained.
"""
from __future__ import annotations

import numpy as np

from ..models.crm import CRM, CRMConfig
from ..sam.prompt import PromptConfig, lowres_to_image, sam_prompt
from ..sam.stage import SamStage
from .spec import VariantSpec


class PromptStage(SamStage):
    """SAM's answer to prompts from the coarse mask replaces it; the prompt settings are
    ``prompt`` setting (:class:`PromptConfig` fields; the defaults when absent). ``info`` is
    :func:`sam_prompt`'s."""

    uses_embedding = True
    optional = True
    setting_keys = ("prompt",)

    def __call__(self, source, image, coarse, rng=None):
        c = np.asarray(coarse, np.float32) >= 0.5
        logits, info = sam_prompt(source.predictor(image), c, PromptConfig.from_dict(self.settings.get("prompt") or {}))
        return lowres_to_image(logits, *c.shape) > 0, None, info


class SamAnswer:
    """SAM's answer alone, at the photo's size (no boundary step): a baseline with the refiner API,
    ``refine(image, coarse) -> uint8 (H, W) in {0, 255}``.

    With ``prompt={"rounds": 1, "points": False, "negative": False, "mask": False}`` it is SAM
    prompted with the coarse mask's box, the candidate chosen by IoU with the coarse mask.

    Args:
        prompt: :class:`PromptConfig` fields. sam_type, sam_checkpoint: the SAM model (default the
            bundled MobileSAM). sam_cache: optional :class:`~sam_sr.sam.cache.SamCache`.
        device: torch device (default CUDA when available, else CPU).
    """

    def __init__(self, prompt: dict | None = None, sam_type: str = "vit_t", sam_checkpoint=None,
                 sam_cache=None, device=None):
        from ..sam import load_sam
        from ..sam.source import LiveSam
        self.prompt = PromptConfig.from_dict(prompt)
        self.source = LiveSam(load_sam(sam_type, sam_checkpoint, device), cache=sam_cache)

    def refine(self, image: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        c = np.asarray(coarse) > 0
        if not c.any():
            return c.astype(np.uint8) * 255
        logits, _ = sam_prompt(self.source.predictor(image), c, self.prompt)
        return (lowres_to_image(logits, *c.shape) > 0).astype(np.uint8) * 255


SPEC = VariantSpec(
    name="sam-prompt", model=CRM, config=CRMConfig, defaults={"extra_channels": 0},
    fixed=("extra_channels",), sam_stage=PromptStage, runs_checkpoints_of=("crm",),
    default_sam_checkpoint="weights/mobile_sam.pt", default_sam_type="vit_t",
    default_checkpoint="weights/crm_r18.pt", inference={"decode": "contour:4", "margin": 0.0},
    summary="training-free: SAM prompted from the coarse mask (SAMRefiner), then the CRM cascade")
