"""Where a dataset's ground-truth boundaries sit relative to the image's edges.

Annotation conventions differ: some datasets trace the object's edge, others draw the mask a pixel or
so beyond it. At the 1-3 px radii of mBA on ~500 px photos that convention decides much of the score,
so a refiner should be fine-tuned on masks drawn the way its evaluation masks are. The profile here
is the mean image gradient magnitude (Sobel, on the grey image) over the pixels at each signed
distance from the mask boundary: a peak at -1 means the edge lies one pixel inside the mask, i.e. the
mask runs about a pixel beyond it; equal values at -1 and +1 mean the mask follows the edge.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import SamSrError
from .metrics import _binary


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance of each pixel to a binary mask's boundary, float32 (H, W) in pixels:
    negative inside (-1 on the mask's outermost pixels), positive outside (+1 next to the mask);
    L2 distance transform (OpenCV, 5x5 mask).

    Args:
        mask: (H, W) bool, {0, 1}, {0, 255} or float (thresholded at 0.5), as the metrics take.
    """
    m = _binary(mask).astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)
    return np.where(m > 0, -inside, outside).astype(np.float32)


def edge_profile(image: np.ndarray, mask: np.ndarray, max_distance: int = 4) -> dict[int, float]:
    """Mean Sobel gradient magnitude of ``image`` at each signed distance from ``mask``'s boundary.

    Args:
        image: uint8 (H, W, 3) RGB or (H, W) grey.
        mask: (H, W) ground truth (see :func:`signed_distance`).
        max_distance: distances -D..-1 and 1..D pixels are reported (a pixel is in bin d when its
            signed distance rounds to d).

    Returns:
        ``{d: mean gradient magnitude}`` (grey levels per pixel, Sobel 3x3 scale) for the distances
        that have pixels.

    Raises:
        SamSrError: image and mask sizes differ, or ``max_distance`` < 1.
    """
    if max_distance < 1:
        raise SamSrError(f"max_distance must be >= 1 pixel, got {max_distance}")
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if grey.shape[:2] != np.asarray(mask).shape[:2]:
        raise SamSrError(f"image {grey.shape[:2]} and mask {np.asarray(mask).shape[:2]} differ in size")
    g = grey.astype(np.float32)
    magnitude = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    sd = np.rint(signed_distance(mask)).astype(np.int64)
    out = {}
    for d in [*range(-max_distance, 0), *range(1, max_distance + 1)]:
        sel = sd == d
        if sel.any():
            out[d] = float(magnitude[sel].mean())
    return out


def dataset_profiles(specs: list[str], max_distance: int = 4, progress: bool = True) -> dict[str, Any]:
    """:func:`edge_profile` averaged over the images of each dataset (``generic`` layout).

    Args:
        specs: ``ROOT`` or ``ROOT:IDS_FILE`` per dataset.
        max_distance: report distances -D..-1, 1..D px.

    Returns:
        ``{spec: {"n_images": int, "profile": {distance: mean gradient magnitude}}}``.

    Raises:
        SamSrError: missing folders, empty datasets, unreadable files.
    """
    from tqdm.auto import tqdm

    from ..data.datasets import load_samples
    from ..imaging.read import read_image, read_mask
    results = {}
    for spec in specs:
        root, _, ids = spec.partition(":")
        samples = load_samples({"layout": "generic", "root": root, **({"ids_file": ids} if ids else {})})
        sums: dict[int, list[float]] = {}
        for s in tqdm(samples, desc=Path(root).name, unit="img", disable=not progress):
            for d, v in edge_profile(read_image(s.image), read_mask(s.mask) >= 0.5, max_distance).items():
                sums.setdefault(d, []).append(v)
        results[spec] = {"n_images": len(samples), "profile": {d: float(np.mean(v)) for d, v in sorted(sums.items())}}
    return results


def format_profiles(results: dict[str, Any]) -> str:
    """Markdown table of :func:`dataset_profiles`: one row per dataset, one column per distance."""
    ds = sorted({d for r in results.values() for d in r["profile"]})
    lines = ["| dataset | images | " + " | ".join(f"{d:+d} px" for d in ds) + " |",
             "|---|---|" + "---|" * len(ds)]
    for spec, r in results.items():
        lines.append(f"| {spec} | {r['n_images']} | "
                     + " | ".join(f"{r['profile'].get(d, float('nan')):.1f}" for d in ds) + " |")
    return "\n".join(lines) + "\n"
