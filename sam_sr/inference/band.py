"""The contour band: the pixels within W px of a mask's contour. Stated once for inference and training.

``contour:W`` decoding (:mod:`sam_sr.inference.query`) re-decodes exactly this band of the previous
cascade step's mask and keeps everything else; point-sampled training (:mod:`sam_sr.training.losses`,
``train.point_band: W``) draws its focused query points from the same band of the coarse mask.

Definition: threshold the mask at 0.5 (``>= 0.5`` is foreground), then the band is
``dilate(mask, D) != erode(mask, D)`` where D is OpenCV's elliptic structuring element of
(2W + 1) x (2W + 1) pixels (a digital disc of radius W). Pixels outside the image count as neither
foreground nor background (OpenCV's default morphology border), so the image edge is no contour.
``W = 0`` gives an empty band.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import SamSrError


def band_kernel(width: int) -> np.ndarray:
    """The disc of radius ``width`` px: uint8 (2W + 1, 2W + 1) in {0, 1}.

    Raises:
        SamSrError: a negative width.
    """
    if int(width) < 0:
        raise SamSrError(f"band width must be >= 0 pixels, got {width!r}")
    k = 2 * int(width) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def contour_band(mask, width: int):
    """Pixels within ``width`` px of the contour of ``mask`` thresholded at 0.5 (see module docstring).

    Args:
        mask: numpy array or torch tensor of shape (..., H, W), any real or bool dtype, values in
            [0, 1] (soft masks are thresholded at 0.5).
        width: band half-width W in pixels (>= 0).

    Returns:
        bool array of the same shape and kind (a tensor comes back on its own device).
    """
    kernel = band_kernel(width)
    if isinstance(mask, torch.Tensor):
        flat = (mask >= 0.5).reshape(-1, *mask.shape[-2:]).cpu().numpy().astype(np.uint8)
        out = np.stack([cv2.dilate(m, kernel) != cv2.erode(m, kernel) for m in flat])
        return torch.from_numpy(out.reshape(mask.shape)).to(mask.device)
    m = (np.asarray(mask) >= 0.5).astype(np.uint8)
    if m.ndim == 2:
        return cv2.dilate(m, kernel) != cv2.erode(m, kernel)
    flat = m.reshape(-1, *m.shape[-2:])
    return np.stack([cv2.dilate(x, kernel) != cv2.erode(x, kernel) for x in flat]).reshape(m.shape)
