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


#: RGB tints of :func:`change_map`: pixels the refinement fixed, broke, and errors left in both.
FIXED, BROKEN, LEFT = (40, 220, 40), (230, 40, 40), (240, 200, 40)


def busiest_window(changed: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The ``size`` x ``size`` window (clipped to the mask) holding the most ``changed`` pixels, as
    (y0, x0, y1, x1) in pixels; ties go to the top-left-most. changed: (H, W) bool."""
    h, w = changed.shape
    sh, sw = min(size, h), min(size, w)
    ii = cv2.integral(changed.astype(np.uint8))     # (H + 1, W + 1) int32
    counts = ii[sh:, sw:] - ii[:-sh, sw:] - ii[sh:, :-sw] + ii[:-sh, :-sw]
    y0, x0 = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return int(y0), int(x0), int(y0) + sh, int(x0) + sw


def change_map(image: np.ndarray, coarse: np.ndarray, refined: np.ndarray, gt: np.ndarray,
               window: tuple[int, int, int, int], scale: int = 6, alpha: float = 0.6) -> np.ndarray:
    """Pixel-level view of what refinement changed inside ``window`` (y0, x0, y1, x1), each pixel drawn
    as a ``scale`` x ``scale`` block: tinted green where the coarse mask was wrong and the refined mask
    is right (fixed), red where the coarse was right and the refined is wrong (broken), yellow where both
    are wrong (left). image: uint8 (H, W, 3) RGB; masks (H, W), nonzero = foreground.
    Returns uint8 ((y1 - y0) * scale, (x1 - x0) * scale, 3)."""
    y0, x0, y1, x1 = window
    sl = (slice(y0, y1), slice(x0, x1))
    c, r, g = (np.asarray(m)[sl] > 0 for m in (coarse, refined, gt))
    out = np.array(image[sl], dtype=np.float32)
    for sel, colour in (((c != g) & (r == g), FIXED), ((c == g) & (r != g), BROKEN),
                        ((c != g) & (r != g), LEFT)):
        out[sel] = (1 - alpha) * out[sel] + alpha * np.array(colour, np.float32)
    out = out.round().astype(np.uint8)
    return np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)


def draw_contours(image: np.ndarray, layers, thickness: int = 1) -> np.ndarray:
    """A uint8 (H, W, 3) RGB copy of ``image`` with the contours of each layer drawn in its colour.

    Args:
        layers: ``[(masks, (r, g, b)), ...]`` drawn in order (later layers on top); ``masks`` is one
            (H, W) mask or a list of them (e.g. a photo's instances or a label map's classes),
            nonzero = inside.
        thickness: line width in pixels.
    """
    out = np.array(image, dtype=np.uint8, order="C")
    for masks, colour in layers:
        if isinstance(masks, np.ndarray) and masks.ndim == 2:
            masks = [masks]
        for m in masks:
            contours, _ = cv2.findContours((np.asarray(m) > 0).astype(np.uint8), cv2.RETR_LIST,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, colour, thickness)
    return out
