"""Multi-class refinement of semantic label maps (``sam-sr infer --labels``).

``refine_semantic`` refines the binary mask of each class present in a label map with a binary
refiner (classes too small to resolve keep their pixels) and merges the refined soft maps
(:func:`merge_class_probabilities`): a pixel takes the most probable class only on clear evidence,
except where a boundary between thick neighbouring classes moves (:func:`margin_map`), and keeps its
input label where no class is confident; pixels with the ignore label keep it. The choices are
measured in docs/RESULTS.md ("Thin-aware merge").
"""
from __future__ import annotations

import numpy as np

from ..data.labels import check_labels
from ..errors import SamSrError

#: Default hysteresis of :func:`merge_class_probabilities` (chosen on CamVid val: docs/RESULTS.md).
SWITCH_MARGIN = 0.3
#: The hysteresis away from thin parts (None: ``switch_margin`` everywhere; see :func:`margin_map`).
OPEN_MARGIN: float | None = 0.0
#: Named merges for the command line (``sam-sr infer --labels ... --label-merge NAME``): the keyword
#: arguments of :func:`refine_semantic` each sets. ``thin-aware`` is the default; ``uniform`` the
#: default before 2026-12-07; ``argmax`` v5's plain argmax (more gain on blocky maps, thin classes lost).
LABEL_MERGES: dict[str, dict[str, float | None]] = {
    "thin-aware": {"switch_margin": SWITCH_MARGIN, "open_margin": OPEN_MARGIN},
    "uniform": {"switch_margin": SWITCH_MARGIN, "open_margin": None},
    "argmax": {"switch_margin": 0.0, "open_margin": None},
}
DEFAULT_LABEL_MERGE = "thin-aware"


def label_merge(name: str | None) -> dict[str, float | None]:
    """The :func:`refine_semantic` keyword arguments of the merge ``name`` (None: the default).

    Raises:
        SamSrError: a name not in :data:`LABEL_MERGES`.
    """
    name = DEFAULT_LABEL_MERGE if name is None else name
    if name not in LABEL_MERGES:
        raise SamSrError(f"unknown label merge {name!r}; choose from {', '.join(LABEL_MERGES)}")
    return dict(LABEL_MERGES[name])


def thin_radius(shape: tuple[int, int]) -> int:
    """The radius (px) of :func:`margin_map`: one 192nd of the longer side, at least 2 px (2 px on a
    480 x 360 CamVid frame; chosen on CamVid val, docs/RESULTS.md)."""
    return max(2, int(round(max(shape) / 192)))


def min_class_pixels(shape: tuple[int, int]) -> int:
    """The fewest pixels a class needs to be refined in a label map of ``shape``: (2 s + 1)^2 with s
    one 96th of the longer side, at least 2 px (121 px on a 480 x 360 CamVid frame). Smaller classes
    keep their pixels: the refiner cannot resolve them (a 25 px car fragment of a right CamVid map
    lost 3 px to the road; docs/RESULTS.md)."""
    return (2 * max(2, int(round(max(shape) / 96))) + 1) ** 2


def margin_map(lab: np.ndarray, present: list[int], switch_margin: float, open_margin: float | None,
               target: np.ndarray | None = None, radius: int | None = None,
               away_margin: float | None = None) -> np.ndarray | float:
    """The switch margin of each pixel: ``open_margin`` where the class it would switch to
    (``target``) lies within ``radius`` px of it in ``lab`` (a boundary between neighbours moves),
    except within ``radius`` px of a thin part of any class of ``present`` (pixels that OpenCV's
    opening with an elliptic kernel of that radius removes: parts narrower than 2 x radius + 1 px);
    ``switch_margin`` everywhere else. So thick classes' boundaries move freely, while a thin class is
    kept from being eaten by a neighbour's outward rim, or grown by its own, and no class appears
    away from where it already is on a small lead.

    Args:
        lab: integer (H, W) label map.
        target: int (H, W), the index into ``present`` of each pixel's winning class; None: any
            other class of ``present`` within ``radius`` px counts (the band along every boundary).
        radius: px; default :func:`thin_radius`.
        away_margin: the margin away from both (where the winning class is not within ``radius`` px
            and no thin part is near); None: ``switch_margin`` there too.

    Returns:
        float32 (H, W), or ``switch_margin`` itself when ``open_margin`` is None (the same everywhere).
    """
    if open_margin is None:
        return switch_margin
    import cv2
    r = int(radius if radius is not None else thin_radius(lab.shape))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    thin = np.zeros(lab.shape, np.uint8)
    near_target = np.zeros(lab.shape, bool)
    for k, c in enumerate(present):
        m = (lab == c).astype(np.uint8)
        thin |= m & (1 - cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE))
        near = (cv2.dilate(m, kernel) > 0) & (m == 0)
        near_target |= near if target is None else near & (target == k)
    near_thin = cv2.dilate(thin, kernel) > 0
    away = np.float32(switch_margin if away_margin is None else away_margin)
    return np.where(near_thin, np.float32(switch_margin),
                    np.where(near_target, np.float32(open_margin), away))


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
                    min_pixels: int | None = None, switch_margin: float = SWITCH_MARGIN,
                    open_margin: float | None = OPEN_MARGIN) -> np.ndarray:
    """Refine a semantic label map class by class.

    Each class present is refined as a binary coarse mask (``refiner.predict(...).soft``); the
    soft maps are merged by :func:`merge_class_probabilities`.

    Args:
        refiner: a :class:`sam_sr.Refiner` (binary).
        image: uint8 (H, W, 3) RGB.
        labels: integer (H, W) class indices 0..num_classes-1, possibly ``ignore_index``.
        confidence: a pixel whose best refined probability is below this keeps its input label.
        min_pixels: classes with fewer pixels are not refined (they keep their input pixels);
            default :func:`min_class_pixels`.
        switch_margin: a pixel changes class only when the new class's refined probability beats
            its input class's by more than this (in [0, 1); 0: plain argmax).
        open_margin: if set, this holds where a pixel would switch to a class already within a few
            px of it, away from thin parts, and ``switch_margin`` elsewhere (:func:`margin_map`).

    Returns:
        (H, W) label map of ``labels``' dtype. Ignore pixels are unchanged.

    Raises:
        SamSrError: not a 2-D integer map, a size different from the image's, labels outside
            0..num_classes-1 other than ``ignore_index`` (:func:`check_label_values`), a
            ``switch_margin`` or ``open_margin`` outside [0, 1).
    """
    lab = check_labels(labels, np.asarray(image).shape[:2])
    check_label_values(lab, num_classes, ignore_index)
    _check_switch_margin(switch_margin, open_margin)     # before the refinements, not after
    present = classes_to_refine(lab, num_classes, ignore_index, min_pixels)
    if len(present) < 2:
        return lab.copy()
    probs = class_probabilities(refiner, image, lab, present)
    return merge_class_probabilities(lab, probs, present, ignore_index, confidence, switch_margin, open_margin)


def class_probabilities(refiner, image: np.ndarray, lab: np.ndarray, present: list[int]) -> np.ndarray:
    """float32 (K, H, W) in [0, 1]: each class of ``present`` refined as a binary coarse mask
    (0/255) by ``refiner.predict(...).soft``, in the order of ``present``."""
    return np.stack([refiner.predict(image, (lab == c).astype(np.uint8) * 255).soft for c in present])


def _check_switch_margin(switch_margin: float, open_margin: float | None = None,
                         away_margin: float | None = None) -> None:
    for name, v in (("switch_margin", switch_margin), ("open_margin", open_margin), ("away_margin", away_margin)):
        if (v is not None or name == "switch_margin") and not 0.0 <= float(v) < 1.0:
            raise SamSrError(f"{name} must be in [0, 1), got {v!r}")


def classes_to_refine(lab: np.ndarray, num_classes: int, ignore_index: int | None = None,
                      min_pixels: int | None = None) -> list[int]:
    """The classes of ``lab`` (outside ``ignore_index``) with at least ``min_pixels`` pixels (default
    :func:`min_class_pixels`), sorted."""
    if min_pixels is None:
        min_pixels = min_class_pixels(lab.shape)
    valid = np.ones(lab.shape, bool) if ignore_index is None else lab != ignore_index
    classes, counts = np.unique(lab[valid], return_counts=True)
    return [int(c) for c, n in zip(classes, counts) if 0 <= c < num_classes and n >= min_pixels]


def merge_class_probabilities(lab: np.ndarray, probs: np.ndarray, present: list[int],
                              ignore_index: int | None = None, confidence: float = 0.5,
                              switch_margin: float = SWITCH_MARGIN,
                              open_margin: float | None = OPEN_MARGIN,
                              away_margin: float | None = None) -> np.ndarray:
    """Merge per-class refined probabilities into a label map.

    A pixel takes the class of highest probability when that probability reaches ``confidence`` and
    beats the probability of the pixel's input class by more than ``switch_margin`` (a hysteresis:
    a pixel both refinements find likely keeps its input class, so a thin class is not eaten by a
    neighbour's outward rim, nor grown by its own). With ``open_margin`` set, ``open_margin`` holds
    where the winning class already lies within a few px of the pixel, away from thin parts, and
    ``switch_margin`` elsewhere (:func:`margin_map`). Ignore pixels and classes not in ``present``
    keep their input label.

    Args:
        lab: integer (H, W) input label map.
        probs: float32 (K, H, W) in [0, 1], the refined probability of each class of ``present``.
        present: the K classes, in the order of ``probs``.

    Returns:
        (H, W) label map of ``lab``'s dtype.

    Raises:
        SamSrError: ``switch_margin``, ``open_margin`` or ``away_margin`` outside [0, 1), or ``probs``
            not (len(present), H, W).
    """
    _check_switch_margin(switch_margin, open_margin, away_margin)
    if probs.shape != (len(present),) + lab.shape:
        raise SamSrError(f"probs must be {(len(present),) + lab.shape}, got {probs.shape}")
    valid = np.ones(lab.shape, bool) if ignore_index is None else lab != ignore_index
    best = probs.argmax(axis=0)
    conf = probs.max(axis=0)
    index = np.full(int(max(present)) + 1, -1, np.int64)
    index[present] = np.arange(len(present))
    known = np.isin(lab, present) & valid
    own = np.zeros(lab.shape, np.float32)
    own[known] = np.take_along_axis(probs[:, known], index[lab[known]][None], 0)[0]
    out = np.asarray(present, dtype=lab.dtype)[best]
    keep = (conf < confidence) | ~known | (conf - own <= margin_map(lab, present, switch_margin, open_margin, best,
                                                                   away_margin=away_margin))
    out[keep] = lab[keep]
    return out
