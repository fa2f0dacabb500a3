"""Figures of refinements: overlays of coarse / refined / ground-truth contours, zoomed change maps,
and the SAM-SR ablation's rows (``sam-sr figure``, ``sam-sr ablation``).

Panels come from :mod:`sam_sr.reporting.visualize` (red = coarse, green = refined, blue = ground-truth
contours; change maps: green = fixed, red = broken, yellow = wrong in both). Every function returns a
uint8 (H, W, 3) RGB image; writing it is the caller's (atomically, with :func:`sam_sr.imaging.write_png`).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..data.datasets import Sample
from ..errors import SamSrError
from ..evaluation.evaluate import coarse_for
from ..imaging.read import read_image, read_mask
from .visualize import busiest_window, change_map, label, overlay, side_by_side


def stack_rows(rows: list[np.ndarray], fill: int = 255) -> np.ndarray:
    """Rows of panels (uint8 (h_i, w_i, 3)) stacked vertically, right-padded with ``fill`` to the widest."""
    if not rows:
        raise SamSrError("a figure needs at least one row")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=fill) for r in rows]
    return np.concatenate(rows, axis=0)


def refinement_figure(refiner, samples: list[Sample], source: str, height: int = 240,
                      zoom: int = 0) -> np.ndarray:
    """Overlays of ``refiner`` on ``samples`` with the coarse masks of ``source`` (a coarse folder of
    the dataset or ``scale_gap_xK``, thresholded at 0.5), three photos per row.

    With ``zoom`` = PX each photo gets a second panel: the PX x PX window where the refined mask
    differs from the coarse one in the most pixels, drawn pixel by pixel
    (:func:`sam_sr.reporting.visualize.change_map`) and labelled with the whole photo's fixed and broken pixel
    counts; then two photos per row. The window shows where refinement acted, not where it did best.

    Raises:
        SamSrError: no samples, or a sample without ``source``.
    """
    if not samples:
        raise SamSrError("no photos for the figure")
    panels = []
    for s in samples:
        image, gt = read_image(s.image), read_mask(s.mask) >= 0.5
        coarse = coarse_for(s, source, gt) >= 0.5
        refined = refiner.refine(image, coarse) > 127
        panels.append(overlay(image, coarse, refined, gt=gt))
        if zoom:
            fixed = int(((coarse != gt) & (refined == gt)).sum())
            broken = int(((coarse == gt) & (refined != gt)).sum())
            window = busiest_window(refined != coarse, zoom)
            scale = max(1, round(height / (window[2] - window[0])))
            panels.append(label(change_map(image, coarse, refined, gt, window, scale),
                                f"{s.id}: fixed {fixed}, broken {broken} px"))
    per_row = 2 if zoom else 3
    return stack_rows([side_by_side(panels[k:k + per_row], height) for k in range(0, len(panels), per_row)])


def ablation_figure(refiners: dict[str, Any], samples: list[Sample], picks: list[tuple[int, float]],
                    source: str, baseline: str, best: str, height: int = 240) -> np.ndarray:
    """Rows coarse | ``baseline`` | ``best`` on the picked samples (``(index, IoU difference)`` from
    :func:`sam_sr.evaluation.ablation.pick_examples`), contours red = coarse, green = refined, blue = ground truth.

    Raises:
        SamSrError: no picks.
    """
    rows = []
    for i, _ in picks:
        s = samples[i]
        image, gt = read_image(s.image), read_mask(s.mask) >= 0.5
        coarse = coarse_for(s, source, gt) >= 0.5
        t = max(2, max(image.shape[:2]) // 150)
        panels = [overlay(image, coarse, coarse, thickness=t, gt=gt)]
        for v in (baseline, best):
            panels.append(overlay(image, coarse, refiners[v].refine(image, coarse), thickness=t, gt=gt))
        panels = [label(p, f"{s.id} {name}") for p, name in zip(panels, ("coarse", baseline, best))]
        rows.append(side_by_side(panels, height))
    return stack_rows(rows, fill=0)


def example_figure(image: np.ndarray, coarse: np.ndarray, refined: dict[str, np.ndarray],
                   window: tuple[int, int, int, int], height: int = 300) -> np.ndarray:
    """Before/after of one photo: a row of whole-photo overlays (the coarse contour red, each refined
    contour green), then a row of the same overlays zoomed into ``window``.

    Args:
        image: uint8 (H, W, 3). coarse: bool (H, W). refined: {panel title: bool (H, W)} in order.
        window: (y0, x0, y1, x1) in pixels, the zoomed part. height: panel height in pixels.

    Returns:
        uint8 (h, w, 3) RGB.

    Raises:
        SamSrError: an empty window or masks of another size than the image.
    """
    y0, x0, y1, x1 = window
    h, w = image.shape[:2]
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise SamSrError(f"window {window} is empty or outside the {w}x{h} image")
    if any(m.shape != (h, w) for m in [coarse, *refined.values()]):
        raise SamSrError("the masks of the figure must have the image's size")
    none = np.zeros_like(coarse)                       # the coarse panel has no refined contour
    panels = [("coarse mask", overlay(image, coarse, none))]
    panels += [(title, overlay(image, coarse, m)) for title, m in refined.items()]
    full = [label(p.copy(), t) for t, p in panels]
    for p in full:
        cv2.rectangle(p, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), max(1, max(h, w) // 400))
    zoom = []
    for t, _ in panels:
        ov = overlay(image[y0:y1, x0:x1], coarse[y0:y1, x0:x1],
                     refined.get(t, none)[y0:y1, x0:x1], thickness=1)
        zoom.append(label(cv2.resize(ov, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST), f"{t}, zoomed"))
    return stack_rows([side_by_side(full, height), side_by_side(zoom, height)])

