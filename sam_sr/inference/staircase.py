"""Blocky coarse masks: a mask upsampled from a low resolution by nearest-neighbour interpolation (a
segmenter run at 1/8 of the photo, its label map resized by ``cv2.INTER_NEAREST`` or PIL's
``NEAREST``) has its boundary on a staircase with a fixed period, and is off from the object's edge
by up to half that period everywhere along it.

:func:`staircase_period` finds that period from the mask alone: in such a mask the columns (and
rows) where any pixel differs from its left (upper) neighbour lie on the low-resolution grid, at
least ``floor(scale)`` px apart, while the contour of a mask drawn at the photo's resolution crosses
almost every column and row that it spans. The predictor widens the boundary step's band to the
staircase's size for such masks (:func:`blocky_settings`); masks without a staircase are unaffected.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: A staircase must show at least this many distinct transition columns and rows: a rectangle (two
#: of each) or an L-shape says nothing about a grid.
MIN_TRANSITIONS = 6
#: The smallest period (px) reported; below it a staircase is no coarser than the boundary band the
#: model already decodes.
MIN_PERIOD = 3
#: The band for a blocky mask: half a period on each side of its contour, and no confidence margin.
#: Chosen on the 30 sod validation photos with the ground truth nearest-upsampled from 1/4, 1/8 and
#: 1/16 (the candidate with the largest smallest IoU or mBA gain, losing no more photos than without
#: it; half or a whole period, margin 0 or 0.1: docs/RESULTS.md).
BLOCKY_WIDTH, BLOCKY_MARGIN = 0.5, 0.0


def _transitions(m: np.ndarray, axis: int) -> np.ndarray:
    """Sorted positions i along ``axis`` where some pixel differs from the one at i - 1."""
    d = m[:, 1:] != m[:, :-1] if axis == 1 else m[1:, :] != m[:-1, :]
    return np.nonzero(d.any(axis=1 - axis))[0] + 1


def staircase_period(mask: np.ndarray) -> int:
    """The period (px) of a blocky mask's staircase, or 0 for a mask without one.

    Args:
        mask: (H, W) bool, or any array thresholded at 0.5 (a soft map's values between 0 and 1 are
            read as its binary mask).

    Returns:
        k >= :data:`MIN_PERIOD`: every column and every row where the mask changes lies at least k
        px from the next (the smaller of the two axes' smallest gaps), on at least
        :data:`MIN_TRANSITIONS` distinct columns and rows, as a mask nearest-upsampled about k times
        is; else 0 (a mask drawn at the photo's resolution, an empty or full mask, a rectangle).
    """
    m = np.asarray(mask)
    m = m if m.dtype == bool else m >= 0.5
    if m.ndim != 2:
        raise ValueError(f"a mask is (H, W), got shape {m.shape}")
    gaps = []
    for axis in (0, 1):
        t = _transitions(m, axis)
        if len(t) < MIN_TRANSITIONS:
            return 0
        gaps.append(int(np.diff(t).min()))
    k = min(gaps)
    return k if k >= MIN_PERIOD else 0


def blocky_settings(period: int, image_hw: tuple[int, int], upsample_to: int, width: float,
                    margin: float) -> dict[str, Any]:
    """The cascade settings for a blocky mask of staircase ``period`` px (at the photo's size): a
    contour band of ``width`` x the period in the last step's pixels (at least 2) and ``margin``.

    Args:
        image_hw: the photo's (H, W) in px. upsample_to: the cascade's ``upsample_to`` (0: off); a
            photo whose longer side is below it is refined at that size, so the band grows with it.
        width: the band's half-width as a share of the period (e.g. 0.5: half a period each side).
        margin: the confidence margin in [0, 0.5).

    Returns:
        ``{"decode": "contour:W", "margin": margin}``, or {} when ``period`` is 0.
    """
    if period <= 0:
        return {}
    longer = max(image_hw)
    scale = upsample_to / longer if upsample_to and longer < upsample_to else 1.0
    return {"decode": f"contour:{max(2, math.ceil(width * period * scale))}", "margin": float(margin)}
