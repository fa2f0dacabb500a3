"""COCO instance masks refined (``sam-sr coco``): every instance of a results file, photo by photo.

Each instance is refined in a crop of the photo at full resolution: the instance's box plus context
on each side of ``pad`` times the box's longer side and at least ``min_context`` pixels, clipped to
the photo (:func:`context_box`). The refined crop is pasted back (the instance is empty outside its
crop). The output is the same list, in the same order, with each refined instance's ``segmentation``
replaced by compressed RLE (``counts`` a string); every other key (ids, category, score, bbox) is
kept. Empty instances and failed ones (an unreadable photo, a bad RLE or polygon, a size that does
not match the photo) are reported in the summary and kept unchanged.

Files and masks: :mod:`sam_sr.data.coco`; scores: :mod:`sam_sr.evaluation.coco`.
"""
from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.coco import decode_segmentation, encode_mask, load_results, mask_box
from ..errors import SamSrError
from ..imaging.read import read_image


def context_box(mask: np.ndarray, pad: float = 0.5, min_context: int = 32) -> tuple[int, int, int, int]:
    """The crop an instance is refined in, (y0, x0, y1, x1) in pixels (end exclusive): the mask's
    box with ``max(min_context, pad * longer box side)`` pixels added on each side, clipped to the
    photo.

    Raises:
        SamSrError: an empty mask, ``pad`` < 0 or ``min_context`` < 0.
    """
    if pad < 0 or min_context < 0:
        raise SamSrError(f"pad and min_context must be >= 0, got {pad}, {min_context}")
    box = mask_box(np.asarray(mask) > 0)
    if box is None:
        raise SamSrError("an empty instance mask has no box")
    y0, x0, y1, x1 = box
    c = int(math.ceil(max(min_context, pad * max(y1 - y0, x1 - x0))))
    h, w = np.asarray(mask).shape[:2]
    return max(0, y0 - c), max(0, x0 - c), min(h, y1 + c), min(w, x1 + c)


def refine_instance(refiner, image: np.ndarray, mask: np.ndarray, pad: float = 0.5,
                    min_context: int = 32) -> np.ndarray:
    """Refine one instance in its context crop (:func:`context_box`) at the photo's resolution.

    Args:
        refiner: anything with ``refine(image, mask) -> uint8 {0, 255}`` (:class:`sam_sr.Refiner`).
        image: uint8 (H, W, 3) RGB; mask: (H, W), nonzero = instance (not empty).

    Returns:
        bool (H, W): the refined instance (False outside the crop).
    """
    y0, x0, y1, x1 = context_box(mask, pad, min_context)
    crop = np.asarray(mask)[y0:y1, x0:x1] > 0
    refined = refiner.refine(np.ascontiguousarray(image[y0:y1, x0:x1]), crop.astype(np.uint8) * 255)
    out = np.zeros(np.asarray(mask).shape[:2], bool)
    out[y0:y1, x0:x1] = np.asarray(refined) > 0
    return out


def plan_coco(results: Sequence[Any], images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs of a COCO run, one per photo (in order of first appearance): ``{"index", "name",
    "image_id", "image", "height", "width", "instances": [result indices], "missing": error or
    None}``. Items that are not dicts with an integer ``image_id`` form one job with ``image_id``
    None that fails. JSON-able, for :mod:`sam_sr.batch.parallel`."""
    groups: "OrderedDict[Any, list[int]]" = OrderedDict()
    for k, it in enumerate(results):
        iid = it.get("image_id") if isinstance(it, dict) else None
        groups.setdefault(iid if isinstance(iid, int) and not isinstance(iid, bool) else None, []).append(k)
    jobs = []
    for n, (iid, idx) in enumerate(groups.items()):
        ref = images.get(iid) if iid is not None else None
        missing = None
        if iid is None:
            missing = "not an instance with an integer image_id"
        elif ref is None:
            missing = f"image id {iid} is not in the image table (annotation file or image folder)"
        jobs.append({"index": n, "name": str(iid), "image_id": iid,
                     "image": ref["path"] if ref else None,
                     "height": ref["height"] if ref else None, "width": ref["width"] if ref else None,
                     "instances": idx, "missing": missing})
    return jobs


def run_coco_jobs(refiner, results: Sequence[Any], jobs: Sequence[dict[str, Any]], pad: float = 0.5,
                  min_context: int = 32, progress: bool = True, desc: str = "refine coco",
                  verbose: bool = True) -> dict[str, Any]:
    """Refine the instances of the jobs of :func:`plan_coco`.

    Returns:
        A JSON-able summary ``{"kind": "coco", "total", "ok", "empty", "failed", "images",
        "items": [{"index", "image_id", "category_id", "score", "status": "ok" | "empty" |
        "failed", "error", "change": 1 - IoU(before, after)}], "segmentations": {str(index):
        refined RLE}}``. Never raises for a bad item or photo.
    """
    items, segs = [], {}
    bar = tqdm(jobs, desc=desc, unit="img", disable=not progress, dynamic_ncols=True)

    def report(rec):
        items.append(rec)
        if verbose and rec["status"] == "failed":
            tqdm.write(f"error: instance {rec['index']} (image {rec['image_id']}): {rec['error']}",
                       file=sys.stderr)

    for job in bar:
        image, image_error = None, job.get("missing")
        if image_error is None:
            try:
                image = read_image(job["image"])
                h, w = image.shape[:2]
                if job.get("height") not in (None, h) or job.get("width") not in (None, w):
                    raise SamSrError(f"photo {job['image']} is {w}x{h} but the annotation file says "
                                     f"{job['width']}x{job['height']}")
            except Exception as exc:  # noqa: BLE001 - a bad photo fails its instances only
                image_error = str(exc) if isinstance(exc, SamSrError) else f"{type(exc).__name__}: {exc}"
        for k in job["instances"]:
            it = results[k]
            rec = {"index": k, "image_id": job["image_id"],
                   "category_id": it.get("category_id") if isinstance(it, dict) else None,
                   "score": it.get("score") if isinstance(it, dict) else None,
                   "status": "ok", "error": None, "change": None}
            try:
                if image_error is not None:
                    raise SamSrError(image_error)
                if "segmentation" not in it:
                    raise SamSrError("the instance has no 'segmentation'")
                before = decode_segmentation(it["segmentation"], *image.shape[:2])
                if not before.any():
                    rec["status"] = "empty"
                else:
                    after = refine_instance(refiner, image, before, pad, min_context)
                    inter = np.logical_and(before, after).sum()
                    union = np.logical_or(before, after).sum()
                    rec["change"] = float(1 - inter / union) if union else 0.0
                    segs[str(k)] = encode_mask(after)
            except Exception as exc:  # noqa: BLE001 - one bad instance never stops the run
                rec["status"] = "failed"
                rec["error"] = str(exc) if isinstance(exc, SamSrError) else f"{type(exc).__name__}: {exc}"
            report(rec)
    return _coco_summary(items, segs, len(jobs))


def _coco_summary(items: list[dict[str, Any]], segs: dict[str, Any], n_images: int) -> dict[str, Any]:
    items = sorted(items, key=lambda r: r["index"])
    count = {s: sum(r["status"] == s for r in items) for s in ("ok", "empty", "failed")}
    return {"kind": "coco", "total": len(items), **count, "images": n_images, "items": items,
            "segmentations": segs}


def merge_coco_summaries(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One COCO summary from the summaries of shards of one run."""
    items = [it for p in parts for it in p["items"]]
    segs = {k: v for p in parts for k, v in p["segmentations"].items()}
    return _coco_summary(items, segs, sum(p["images"] for p in parts))


def apply_refinement(results: Sequence[Any], summary: dict[str, Any]) -> list[Any]:
    """The output results list: ``results`` (same order and items) with the refined instances'
    ``segmentation`` replaced by the refined compressed RLE; other items unchanged."""
    segs = summary["segmentations"]
    out = []
    for k, it in enumerate(results):
        if str(k) in segs:
            it = {**it, "segmentation": segs[str(k)]}
        out.append(it)
    return out


def refine_coco(refiner, results: str | os.PathLike | list, images: dict[int, dict[str, Any]],
                pad: float = 0.5, min_context: int = 32, progress: bool = True,
                verbose: bool = True) -> tuple[list[Any], dict[str, Any]]:
    """Refine every instance of a COCO results list (see the module docstring).

    Args:
        refiner: a :class:`sam_sr.Refiner` (or anything with ``refine(image, mask)``).
        results: the results file or list (:func:`load_results`).
        images: :func:`image_table`.
        pad, min_context: the context crop (:func:`context_box`).

    Returns:
        (the refined results list, the summary of :func:`run_coco_jobs`).

    Raises:
        SamSrError: an unreadable or malformed results file (bad items are reported, not raised).
    """
    res = load_results(results)
    summary = run_coco_jobs(refiner, res, plan_coco(res, images), pad, min_context, progress,
                            verbose=verbose)
    return apply_refinement(res, summary), summary


def summary_line(summary: dict[str, Any]) -> str:
    """``refined 95 of 100 instances on 40 images; 3 empty (kept); 2 failed``."""
    s = summary
    line = f"refined {s['ok']} of {s['total']} instances on {s['images']} images"
    if s["empty"]:
        line += f"; {s['empty']} empty (kept)"
    if s["failed"]:
        line += f"; {s['failed']} failed (kept unchanged)"
    return line


def failed_instances(summary: dict[str, Any]) -> list[int]:
    """Indices of the instances a refinement run (:func:`run_coco_jobs`' summary) failed on."""
    return [it["index"] for it in summary["items"] if it["status"] == "failed"]

