"""SAM fusion for label maps: fusing SAM with a semantic segmenter's label map (three published recipes).

(a) Majority vote: each automatic SAM mask takes the majority class of the prediction inside it and
    is painted into the prediction (largest masks first, so smaller ones end on top).
(b) Prompts from the prediction: per class, prompts derived from the prediction's class mask
    (``single_point``, ``points`` at connected-component centres, ``box``, ``points_box``,
    ``points_box_mask``); of SAM's 3 candidates the one with the highest IoU with the class mask is
    kept; classes are painted in order of decreasing area, the prediction stays where no SAM mask is.
(c) Detector boxes: each detection (``xyxy`` box, label, score) above a confidence threshold is a SAM
    box prompt; masks are painted in order of increasing score.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from ..errors import SamSrError

PROMPTS = ("single_point", "points", "box", "points_box", "points_box_mask")


def majority_vote(label_map: np.ndarray, sam_masks: Iterable[dict[str, Any]],
                  ignore_index: int | None = None, min_fraction: float = 0.0) -> np.ndarray:
    """(a) Paint each SAM mask with the majority class of ``label_map`` inside it.

    Args:
        label_map: integer (H, W) prediction.
        sam_masks: dicts with ``segmentation`` (bool (H, W)) and ``area``, as from SAM's automatic
            mask generator.
        min_fraction: paint only when the majority class covers at least this share of the mask.

    Returns:
        fused (H, W) label map (same dtype). Pixels outside every SAM mask keep the prediction.
    """
    lab = np.asarray(label_map)
    out = lab.copy()
    for m in sorted(sam_masks, key=lambda d: -int(d["area"])):
        seg = np.asarray(m["segmentation"], bool)
        if seg.shape != lab.shape:
            raise SamSrError(f"SAM mask {seg.shape} and label map {lab.shape} differ in size")
        inside = lab[seg]
        if ignore_index is not None:
            inside = inside[inside != ignore_index]
        if inside.size == 0:
            continue
        values, counts = np.unique(inside, return_counts=True)
        k = int(np.argmax(counts))
        if counts[k] / inside.size >= min_fraction:
            out[seg] = values[k]
    return out


def _inner_point(component: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel deepest inside a binary component (maximum of its distance transform)."""
    dist = cv2.distanceTransform(np.pad(component.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def class_prompts(mask: np.ndarray, kind: str, max_points: int = 5, min_area: int = 16) -> dict[str, Any]:
    """SAM prompts for one class mask (bool (H, W)): ``point_coords`` (N, 2) xy, ``point_labels``,
    ``box`` (4,) xyxy and/or ``mask`` (the class mask, for a mask prompt), by ``kind`` in
    :data:`PROMPTS`."""
    if kind not in PROMPTS:
        raise SamSrError(f"unknown prompt kind {kind!r}; choose from {PROMPTS}")
    m = np.asarray(mask, bool)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    order = [i for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1
             if stats[i, cv2.CC_STAT_AREA] >= min_area] or ([1] if n > 1 else [])
    if not order:
        raise SamSrError("empty class mask: no prompt can be derived")
    out: dict[str, Any] = {}
    if kind in ("single_point", "points", "points_box", "points_box_mask"):
        chosen = order[:1] if kind == "single_point" else order[:max_points]
        pts = [_inner_point(comp == i) for i in chosen]
        out["point_coords"] = np.asarray(pts, np.float32)
        out["point_labels"] = np.ones(len(pts), np.int64)
    if "box" in kind:
        ys, xs = np.nonzero(m)
        out["box"] = np.asarray([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    if kind == "points_box_mask":
        out["mask"] = m
    return out


def mask_prompt_logits(mask: np.ndarray, predictor, scale: float = 8.0) -> np.ndarray:
    """A binary mask as SAM's low-resolution mask prompt: float32 (1, S, S) logits (+-``scale``) in
    the padded square input frame of ``predictor``'s model (S = 256 for SAM and MobileSAM)."""
    h, w = mask.shape
    size = int(predictor.model.prompt_encoder.mask_input_size[0])
    nh, nw = predictor.transform.get_preprocess_shape(h, w, size)
    small = cv2.resize(mask.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((size, size), -scale, np.float32)
    out[:nh, :nw] = np.where(small >= 0.5, scale, -scale)
    return out[None]


def _best_by_iou(masks: np.ndarray, target: np.ndarray) -> np.ndarray:
    inter = (masks & target[None]).reshape(len(masks), -1).sum(1)
    union = (masks | target[None]).reshape(len(masks), -1).sum(1)
    return masks[int(np.argmax(inter / np.maximum(union, 1)))]


def prompt_fusion(predictor, image: np.ndarray, label_map: np.ndarray, kind: str = "points_box",
                  ignore_index: int | None = None, min_area: int = 64, max_points: int = 5,
                  image_is_set: bool = False) -> np.ndarray:
    """(b) Prompt SAM per class of ``label_map`` and aggregate the chosen masks.

    Args:
        predictor: a ``SamPredictor`` (:func:`sam_sr.sam.predictor`).
        image: uint8 (H, W, 3) RGB. ``image_is_set``: skip ``predictor.set_image`` (already done).
        kind: one of :data:`PROMPTS`.
        min_area: classes with fewer pixels are not prompted.

    Returns:
        fused (H, W) label map (same dtype).
    """
    lab = np.asarray(label_map)
    if lab.shape != image.shape[:2]:
        raise SamSrError(f"label map {lab.shape} and image {image.shape[:2]} differ in size")
    if not image_is_set:
        predictor.set_image(image)
    classes, counts = np.unique(lab, return_counts=True)
    todo = [(int(c), int(n)) for c, n in zip(classes, counts)
            if n >= min_area and (ignore_index is None or c != ignore_index)]
    out = lab.copy()
    for c, _ in sorted(todo, key=lambda t: -t[1]):
        target = lab == c
        p = class_prompts(target, kind, max_points=max_points)
        mask_input = mask_prompt_logits(p.pop("mask"), predictor) if "mask" in p else None
        masks, _, _ = predictor.predict(point_coords=p.get("point_coords"),
                                        point_labels=p.get("point_labels"), box=p.get("box"),
                                        mask_input=mask_input, multimask_output=True)
        out[_best_by_iou(masks.astype(bool), target)] = c
    return out


def read_detections(path: str | Path, threshold: float = 0.0) -> list[dict[str, Any]]:
    """Detections from JSON: a list (or ``{"detections": [...]}``) of ``{"xyxy": [x0, y0, x1, y1],
    "label": int, "score": float}`` in pixels; those with score >= ``threshold``.

    Raises:
        SamSrError: missing file, invalid JSON, or malformed entries.
    """
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"detections file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise SamSrError(f"invalid JSON in {p}: {exc}") from exc
    dets = data.get("detections") if isinstance(data, dict) else data
    if not isinstance(dets, list):
        raise SamSrError(f"{p}: expected a list of detections")
    out = []
    for i, d in enumerate(dets):
        try:
            box = [float(v) for v in d["xyxy"]]
            label, score = int(d["label"]), float(d.get("score", 1.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise SamSrError(f"{p}: detection {i} needs xyxy (4 numbers), label and score") from exc
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise SamSrError(f"{p}: detection {i} has a bad box {box}")
        if score >= threshold:
            out.append({"xyxy": box, "label": label, "score": score})
    return out


def detection_fusion(predictor, image: np.ndarray, label_map: np.ndarray,
                     detections: list[dict[str, Any]], image_is_set: bool = False) -> np.ndarray:
    """(c) Each detection's box prompts SAM (single-mask output); its mask is painted with the
    detection's label, lowest score first so that confident detections end on top.

    Returns:
        fused (H, W) label map (same dtype as ``label_map``).
    """
    lab = np.asarray(label_map)
    out = lab.copy()
    if not detections:
        return out
    if not image_is_set:
        predictor.set_image(image)
    for d in sorted(detections, key=lambda d: d["score"]):
        masks, _, _ = predictor.predict(box=np.asarray(d["xyxy"], np.float32), multimask_output=False)
        out[masks[0].astype(bool)] = d["label"]
    return out


def boxes_from_labels(label_map: np.ndarray, classes: Iterable[int], min_area: int = 64,
                      score: float = 1.0) -> list[dict[str, Any]]:
    """Detections from a label map: one box per connected component of each class in ``classes``
    with at least ``min_area`` pixels (used to make pseudo- or oracle detections for evaluation)."""
    dets = []
    for c in classes:
        n, _, stats, _ = cv2.connectedComponentsWithStats((np.asarray(label_map) == c).astype(np.uint8))
        for i in range(1, n):
            x, y, w, h, a = stats[i]
            if a >= min_area:
                dets.append({"xyxy": [float(x), float(y), float(x + w), float(y + h)], "label": int(c),
                             "score": float(score)})
    return dets
