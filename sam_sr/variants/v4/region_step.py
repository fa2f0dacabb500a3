"""The region step of SAM-SR v4 at inference: SAM's answers to prompts from the coarse mask, then the
region network (:class:`sam_sr.variants.v4.region_net.RegionNet`) on SAM's low-resolution grid.

The inputs are built exactly as the stored training samples are (:mod:`sam_sr.variants.v4.data`):
the photo, the coarse mask and a validity map on the 256 x 256 grid of SAM's padded 1024 px frame,
SAM's image embedding, and one SAM answer per prompt setting.
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch

from ...sam.prompt import LOWRES, PromptConfig, image_to_lowres, lowres_shape, lowres_to_image, sam_prompt


def region_inputs(predictor, image: np.ndarray, coarse: np.ndarray, prompts: Sequence[PromptConfig],
                  device: torch.device | str | None = None, sam_info: list | None = None) -> dict[str, torch.Tensor]:
    """The region network's inputs for one photo (the predictor's image must be set to ``image``).

    Args:
        image: uint8 (H, W, 3) RGB. coarse: float (H, W) in [0, 1] (or bool).
        prompts: one SAM answer per entry.
        sam_info: a list that receives each answer's :func:`~sam_sr.sam.prompt.sam_prompt` info
            (``predicted_iou``, ...), in order, when given.

    Returns:
        float32 tensors with a batch of 1, on ``device`` (default the predictor's): ``embedding`` (1, 256, 64, 64),
        ``coarse`` (1, 1, 256, 256), ``sam`` (1, S, 256, 256), ``image`` (1, 3, 256, 256) in [0, 1],
        ``valid`` (1, 1, 256, 256).
    """
    from .data import frame_cover, frame_image
    c = np.asarray(coarse, np.float32)
    binary, memo = c >= 0.5, {}     # one mask and memo: the prompts' full-resolution work is done once
    asked = [sam_prompt(predictor, binary, cfg, memo) for cfg in prompts]
    answers = [a for a, _ in asked]
    if sam_info is not None:
        sam_info.extend(i for _, i in asked)
    dev = torch.device(device) if device is not None else predictor.device
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(dev)  # noqa: E731
    return {
        "embedding": predictor.features.float().to(dev),
        "coarse": t(image_to_lowres(c))[None, None],
        "sam": t(np.stack(answers))[None],
        "image": t(frame_image(image, LOWRES) / np.float32(255)).permute(2, 0, 1)[None],
        "valid": t(frame_cover(c.shape, LOWRES))[None, None],
    }


@torch.no_grad()
def region_step(region_net, predictor, image: np.ndarray, coarse: np.ndarray,
                prompts: Sequence[PromptConfig], device: torch.device | str | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Corrected mask logits of one photo on SAM's grid and at the photo's size.

    Returns:
        (logits float32 (H, W) at the photo's size, resampled as SAM resamples its masks;
        info ``{"lowres": float32 (256, 256) logits, "changed": share of the photo's low-resolution
        cells whose side of 0 differs from the coarse mask's, "sam": SAM's answers float32 (S, lh, lw)
        on the photo's cells of the 256 grid, "sam_info": their sam_prompt infos}``).
    """
    sam_info: list = []
    x = region_inputs(predictor, image, coarse, prompts, device, sam_info)
    low = region_net(x["embedding"], x["coarse"], x["sam"], x["image"], x["valid"])[0, 0].float().cpu().numpy()
    h, w = np.asarray(coarse).shape
    lh, lw = lowres_shape(h, w)
    coarse_low = x["coarse"][0, 0].cpu().numpy()[:lh, :lw] >= 0.5
    changed = float(((low[:lh, :lw] > 0) != coarse_low).mean())
    sam = x["sam"][0, :, :lh, :lw].float().cpu().numpy()
    return lowres_to_image(low, h, w), {"lowres": low, "changed": changed, "sam": sam, "sam_info": sam_info}


def compose(coarse: np.ndarray, region_logits: np.ndarray, radius: int) -> np.ndarray:
    """The coarse mask with the region step's decisions where they differ from it by regions, not
    by a sliver along its contour.

    The pixels where the region step's mask (``region_logits`` > 0) and the coarse mask disagree are
    opened (OpenCV, elliptical kernel of ``radius`` px): what survives is a region-level change (an
    added part, a dropped blob) and takes the region step's value; thinner disagreements along the
    contour keep the coarse mask's full-resolution boundary for the boundary step to refine.

    Args:
        coarse: bool (H, W). region_logits: float (H, W). radius: px (0 = the region mask as it is).

    Returns:
        bool (H, W).
    """
    region = np.asarray(region_logits) > 0
    c = np.asarray(coarse, bool)
    if radius <= 0:
        return region
    diff = region != c
    out = c.copy()
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    if len(rows) == 0:
        return out
    # the opening read only within the disagreements' bounding box grown by 2 radius + 1 px of zeros
    # (or the image's edge), so it runs there: equal to opening the whole image
    pad = 2 * radius + 1
    y0, y1 = max(0, rows[0] - pad), min(diff.shape[0], rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(diff.shape[1], cols[-1] + 1 + pad)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    changed = cv2.morphologyEx(diff[y0:y1, x0:x1].view(np.uint8), cv2.MORPH_OPEN, k).astype(bool)
    out[y0:y1, x0:x1] = np.where(changed, region[y0:y1, x0:x1], c[y0:y1, x0:x1])
    return out
