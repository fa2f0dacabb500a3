"""Label maps as training and evaluation data: the checks every label map passes, and the coarse label
maps of a simulated low-resolution semantic segmenter (:func:`simulate_coarse_labels`).
"""
from __future__ import annotations

import numpy as np

from ..errors import SamSrError


def simulate_coarse_labels(gt: np.ndarray, factor: int = 8, noise: float = 0.0,
                           ignore_index: int | None = None, seed: int = 0) -> np.ndarray:
    """A low-resolution segmenter's label map: ground truth downsampled ``factor``x (nearest), label
    noise at low resolution, upsampled (nearest).

    Noise: each low-resolution pixel, with probability ``noise``, takes the label of a random
    8-neighbour, so errors gather at class boundaries as a segmenter's do. Ignore pixels are filled
    from the nearest labelled pixel, since a segmenter predicts a class everywhere.

    Returns:
        (H, W) label map of ``gt``'s dtype.
    """
    import cv2
    from scipy import ndimage

    g = check_labels(gt)
    h, w = g.shape
    small = cv2.resize(g.astype(np.uint8 if g.max() < 256 else np.uint16),
                       (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_NEAREST)
    if ignore_index is not None and (small == ignore_index).any():
        void = small == ignore_index
        if void.all():
            raise SamSrError("the ground truth is all ignore label")
        idx = ndimage.distance_transform_edt(void, return_distances=False, return_indices=True)
        small = small[idx[0], idx[1]]
    if noise > 0:
        rng = np.random.default_rng(seed)
        flip = rng.random(small.shape) < noise
        dy = rng.integers(-1, 2, small.shape)
        dx = rng.integers(-1, 2, small.shape)
        yy = np.clip(np.arange(small.shape[0])[:, None] + dy, 0, small.shape[0] - 1)
        xx = np.clip(np.arange(small.shape[1])[None, :] + dx, 0, small.shape[1] - 1)
        small = np.where(flip, small[yy, xx], small)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(g.dtype)


def check_labels(labels: np.ndarray, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "iu":
        raise SamSrError(f"a label map must be a 2-D integer array, got {lab.dtype} {lab.shape}")
    if image_hw is not None and lab.shape != tuple(image_hw):
        raise SamSrError(f"label map {lab.shape} and image {tuple(image_hw)} differ in size")
    return lab
