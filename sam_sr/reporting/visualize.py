"""Refinement overlays: the image with coarse (red) and refined (green) mask contours.

Masks are read the same way everywhere here (:func:`binary`): a float mask (soft, in [0, 1]) is
foreground at >= 0.5, any other at nonzero. Contours are drawn on the mask's own edge: the outermost
``thickness`` pixels inside the mask (its inner morphological gradient, OpenCV), never outside it.
"""
from __future__ import annotations

import cv2
import numpy as np


def binary(mask: np.ndarray) -> np.ndarray:
    """bool (H, W): a float mask thresholded at 0.5, any other mask at nonzero."""
    m = np.asarray(mask)
    return m >= 0.5 if m.dtype.kind == "f" else m != 0


def edge(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """bool (H, W): the mask's pixels within ``thickness`` px of its boundary, inside the mask (the
    mask minus its erosion by a ``2 thickness + 1`` square; the image's border counts as outside)."""
    m = binary(mask).astype(np.uint8)
    t = max(1, int(thickness))
    inner = cv2.erode(np.pad(m, t), np.ones((2 * t + 1, 2 * t + 1), np.uint8))[t:-t, t:-t]
    return (m > 0) & (inner == 0)


def overlay(image: np.ndarray, coarse: np.ndarray, refined: np.ndarray, thickness: int | None = None,
            gt: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB: ``image`` with the coarse contour in red, refined in green and, if given,
    the ground truth in blue, each on its mask's own edge (:func:`edge`). Masks are (H, W), read by
    :func:`binary`. ``thickness`` in pixels (default: 1/300 of the image's longer side, at least 1)."""
    t = thickness or max(1, max(np.asarray(image).shape[:2]) // 300)
    layers = [(coarse, (255, 40, 40)), (refined, (40, 255, 40))]
    if gt is not None:
        layers.append((gt, (60, 120, 255)))
    return draw_contours(image, layers, t)


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
    c, r, g = (binary(m)[sl] for m in (coarse, refined, gt))
    out = np.array(image[sl], dtype=np.float32)
    for sel, colour in (((c != g) & (r == g), FIXED), ((c == g) & (r != g), BROKEN),
                        ((c != g) & (r != g), LEFT)):
        out[sel] = (1 - alpha) * out[sel] + alpha * np.array(colour, np.float32)
    out = out.round().astype(np.uint8)
    return np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)


def draw_contours(image: np.ndarray, layers, thickness: int = 1) -> np.ndarray:
    """A uint8 (H, W, 3) RGB copy of ``image`` with each layer's contours drawn in its colour, on the
    masks' own edges (:func:`edge`: the line lies inside the mask, never outside).

    Args:
        layers: ``[(masks, (r, g, b)), ...]`` drawn in order (later layers on top); ``masks`` is one
            (H, W) mask or a list of them (e.g. a photo's instances or a label map's classes), read by
            :func:`binary`.
        thickness: line width in pixels.
    """
    out = np.array(image, dtype=np.uint8, order="C")
    for masks, colour in layers:
        if isinstance(masks, np.ndarray) and masks.ndim == 2:
            masks = [masks]
        for m in masks:
            out[edge(m, thickness)] = colour
    return out


#: RGB tints of :func:`tint_changes`: pixels refinement added to the mask, and pixels it removed.
ADDED, REMOVED = (0, 200, 255), (255, 0, 200)


def tint_changes(image: np.ndarray, coarse, refined, alpha: float = 0.55) -> np.ndarray:
    """A uint8 (H, W, 3) RGB copy of ``image`` tinted where refinement changed the mask: :data:`ADDED`
    (refined but not coarse) and :data:`REMOVED` (coarse but not refined). ``coarse`` and ``refined``
    are one (H, W) mask each or lists of them (instances, classes: a pixel counts where any differs),
    read by :func:`binary`."""
    out = np.array(image, dtype=np.float32)
    cs = [coarse] if isinstance(coarse, np.ndarray) and coarse.ndim == 2 else list(coarse)
    rs = [refined] if isinstance(refined, np.ndarray) and refined.ndim == 2 else list(refined)
    added = np.zeros(out.shape[:2], bool)
    removed = np.zeros(out.shape[:2], bool)
    for c, r in zip(cs, rs):
        c, r = binary(c), binary(r)
        added |= r & ~c
        removed |= c & ~r
    for sel, colour in ((added, ADDED), (removed, REMOVED)):
        out[sel] = (1 - alpha) * out[sel] + alpha * np.array(colour, np.float32)
    return out.round().astype(np.uint8)


def change_window(changed: np.ndarray, min_side: int = 48, pad: float = 0.25) -> tuple[int, int, int, int]:
    """The window (y0, x0, y1, x1), in pixels, that frames the largest connected region of ``changed``
    (bool (H, W); 8-connected, OpenCV): its bounding box grown by ``pad`` of its longer side on each
    side and to at least ``min_side`` px square, clipped to the image. The whole image when nothing
    changed."""
    h, w = changed.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(changed.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0, 0, h, w
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[k, :4])
    side = max(min_side, int(round(max(bw, bh) * (1 + 2 * pad))))
    cy, cx = y + bh / 2, x + bw / 2
    y0 = int(round(min(max(cy - side / 2, 0), max(h - side, 0))))
    x0 = int(round(min(max(cx - side / 2, 0), max(w - side, 0))))
    return y0, x0, min(h, y0 + side), min(w, x0 + side)
