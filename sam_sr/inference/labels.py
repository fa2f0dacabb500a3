"""Multi-class refinement of semantic label maps (``sam-sr infer --labels``).

``refine_semantic`` refines the binary mask of each class present in a label map with a binary
refiner and merges the refined soft maps by argmax, falling back to the input label where no class
is confident; pixels with the ignore label keep it.
"""
from __future__ import annotations

import numpy as np

from ..data.labels import check_labels
from ..errors import SamSrError


def check_label_values(labels: np.ndarray, num_classes: int, ignore_index: int | None = None,
                       name: str = "label map") -> None:
    """Check that every label is a class 0..num_classes-1 or ``ignore_index``.

    Raises:
        SamSrError: ``num_classes`` < 1, or labels outside that set, naming ``name`` (e.g. the
            file) and up to 8 of the offending values.
    """
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) \
            or num_classes < 1:
        raise SamSrError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    lab = np.asarray(labels)
    bad = (lab < 0) | (lab >= num_classes)
    if ignore_index is not None:
        bad &= lab != ignore_index
    if bad.any():
        values = np.unique(lab[bad])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        allowed = f"0..{num_classes - 1}" + (f" and the ignore index {ignore_index}"
                                             if ignore_index is not None else "")
        raise SamSrError(f"{name} has labels outside {allowed}: {shown} ({int(bad.sum())} pixels); "
                         f"check num_classes / ignore_index")


def refine_semantic(refiner, image: np.ndarray, labels: np.ndarray, num_classes: int,
                    ignore_index: int | None = None, confidence: float = 0.5,
                    min_pixels: int = 16) -> np.ndarray:
    """Refine a semantic label map class by class.

    Args:
        refiner: a :class:`sam_sr.Refiner` (binary).
        image: uint8 (H, W, 3) RGB.
        labels: integer (H, W) class indices 0..num_classes-1, possibly ``ignore_index``.
        confidence: a pixel whose best refined probability is below this keeps its input label.
        min_pixels: classes with fewer pixels are not refined (they keep their input pixels).

    Returns:
        (H, W) label map of ``labels``' dtype. Ignore pixels are unchanged.

    Raises:
        SamSrError: not a 2-D integer map, a size different from the image's, labels outside
            0..num_classes-1 other than ``ignore_index`` (:func:`check_label_values`).
    """
    lab = check_labels(labels, np.asarray(image).shape[:2])
    check_label_values(lab, num_classes, ignore_index)
    valid = np.ones(lab.shape, bool) if ignore_index is None else lab != ignore_index
    classes, counts = np.unique(lab[valid], return_counts=True)
    present = [int(c) for c, n in zip(classes, counts) if 0 <= c < num_classes and n >= min_pixels]
    if len(present) < 2:
        return lab.copy()
    probs = np.stack([refiner.predict(image, (lab == c).astype(np.uint8) * 255).soft
                      for c in present])
    best = probs.argmax(axis=0)
    conf = probs.max(axis=0)
    out = np.asarray(present, dtype=lab.dtype)[best]
    keep = (conf < confidence) | ~valid | ~np.isin(lab, present)
    out[keep] = lab[keep]
    return out

