"""Refinement overlays: the image with coarse (red) and refined (green) mask contours."""
from __future__ import annotations

import cv2
import numpy as np


def overlay(image: np.ndarray, coarse: np.ndarray, refined: np.ndarray, thickness: int | None = None,
            gt: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB: ``image`` with the coarse contour in red, refined in green and, if given,
    the ground truth in blue. Masks are (H, W), nonzero = foreground. ``thickness`` in pixels
    (default: 1/300 of the image's longer side, at least 1)."""
    out = np.array(image, dtype=np.uint8, order="C")
    t = thickness or max(1, max(out.shape[:2]) // 300)
    layers = [(coarse, (255, 40, 40)), (refined, (40, 255, 40))]
    if gt is not None:
        layers.append((gt, (60, 120, 255)))
    for m, colour in layers:
        contours, _ = cv2.findContours((np.asarray(m) > 0).astype(np.uint8), cv2.RETR_LIST,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, t)
    return out


def side_by_side(panels: list[np.ndarray], height: int = 320) -> np.ndarray:
    """Resize uint8 RGB panels to a common height and concatenate them horizontally."""
    resized = [cv2.resize(p, (max(1, round(p.shape[1] * height / p.shape[0])), height),
                          interpolation=cv2.INTER_AREA) for p in panels]
    return np.concatenate(resized, axis=1)


def label(panel: np.ndarray, text: str) -> np.ndarray:
    """A copy of a uint8 RGB panel with ``text`` in white on a black strip at its top-left."""
    out = np.array(panel, dtype=np.uint8, order="C")
    scale = max(0.4, out.shape[0] / 600)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    out[: h + base + 6, : w + 8] = 0
    cv2.putText(out, text, (4, h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
