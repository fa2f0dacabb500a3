"""COCO instance masks scored before and after refinement (``sam-sr coco --eval``).

Mask AP, AP50 and AP75 from pycocotools' ``COCOeval`` (``iouType="segm"``), in percent; and mean mBA
(:func:`sam_sr.evaluation.metrics.boundary_accuracy`, CascadePSP's definition, on the full photo):
each detection is paired with the ground-truth instance of the same photo and category (not crowd)
that has the highest mask IoU with the *unrefined* detection; pairs with IoU below ``min_iou``
(default 0.5) are left out; the same pairs are scored before and after refinement, so the two means
are over the same instances.
"""
from __future__ import annotations

import contextlib
import copy
import io as _io
import os
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.coco import (
    decode_rle,
    decode_segmentation,
    encode_mask,
    is_number,
    load_json,
    load_results,
    mask_utils,
)
from ..errors import SamSrError


def ground_truth(gt: str | os.PathLike | dict) -> dict[str, Any]:
    """A COCO annotation file (or dict, copied) with ground-truth instances, checked: ``images``
    with integer ``id``, ``height`` and ``width``; ``annotations`` and ``categories`` lists.

    Raises:
        SamSrError: a missing or malformed file, or one without those lists (naming the problem).
    """
    data = copy.deepcopy(gt) if isinstance(gt, dict) else load_json(gt, "COCO annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("annotations"), list) or not isinstance(data.get("categories"), list):
        raise SamSrError("a COCO annotation file needs 'images', 'annotations' and 'categories' lists")
    for k, im in enumerate(data["images"]):
        if not (isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("height"), int)
                and isinstance(im.get("width"), int)):
            raise SamSrError(f"images[{k}] of the annotation file needs integer id, height and width")
    return data



def _canonical(results: Sequence[Any], sizes: dict[int, tuple[int, int]], what: str) -> list[dict]:
    """Validated copies of results with compressed-RLE segmentations (what COCOeval reads)."""
    out = []
    for k, it in enumerate(results):
        if not isinstance(it, dict):
            raise SamSrError(f"{what}[{k}] is not an instance dict")
        iid = it.get("image_id")
        if iid not in sizes:
            raise SamSrError(f"{what}[{k}] has image_id {iid!r}, which the annotation file does not list")
        if not isinstance(it.get("category_id"), int) or not is_number(it.get("score")):
            raise SamSrError(f"{what}[{k}] needs an integer category_id and a numeric score")
        try:
            mask = decode_segmentation(it.get("segmentation"), *sizes[iid])
        except SamSrError as exc:
            raise SamSrError(f"{what}[{k}]: {exc}") from exc
        out.append({"image_id": iid, "category_id": it["category_id"], "score": float(it["score"]),
                    "segmentation": encode_mask(mask)})
    return out



def _ap(coco_gt, dets: list[dict]) -> dict[str, float | None]:
    from pycocotools.cocoeval import COCOeval
    if not dets:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(_io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (None if ev.stats[i] < 0 else 100 * float(ev.stats[i]))
            for i, k in enumerate(("AP", "AP50", "AP75"))}



def evaluate_coco(gt: str | os.PathLike | dict, before: str | os.PathLike | list,
                  after: str | os.PathLike | list | None = None, min_iou: float = 0.5,
                  progress: bool = True, exclude: Sequence[int] = ()) -> dict[str, Any]:
    """Mask AP and mean mBA of COCO results, before and (optionally) after refinement.

    Args:
        gt: the COCO annotation file (or dict) with ground-truth instance masks.
        before: the unrefined results; after: the refined results (same length and order, as
            :func:`refine_coco` writes them).
        min_iou: mBA pairs need at least this mask IoU between the unrefined detection and its
            ground-truth instance (see the module docstring).
        exclude: indices of results left out of both lists, e.g. the instances a refinement run
            failed on (:func:`failed_instances`): they would fail here too.

    Returns:
        ``{"coarse": scores, "refined": scores (with after), "pairs": n, "excluded": n,
        "per_image": {image_id:
        {"n", "mba_coarse", "mba_refined", "iou_coarse", "iou_refined"}}}`` with scores ``{"AP",
        "AP50", "AP75", "mba", "iou", "n_detections"}``, all in percent (``mba``/``iou`` are means
        over the pairs; None without pairs).

    Raises:
        SamSrError: malformed files; a detection whose image the annotation file does not list, or
            whose mask cannot be decoded (naming it); ``after`` of another length than ``before``.
    """
    from pycocotools.coco import COCO

    from .metrics import boundary_accuracy

    mu = mask_utils()
    data = ground_truth(gt)
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    skip = set(exclude)

    def kept(results):
        return [it for k, it in enumerate(load_results(results)) if k not in skip]

    sets = {"coarse": _canonical(kept(before), sizes, "before")}
    if after is not None:
        sets["refined"] = _canonical(kept(after), sizes, "after")
        if len(sets["refined"]) != len(sets["coarse"]):
            raise SamSrError(f"the refined results have {len(sets['refined'])} instances, the "
                             f"unrefined {len(sets['coarse'])}; they must be the same list")
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or ann.get("image_id") not in sizes:
            raise SamSrError(f"annotations[{k}] has an image_id the annotation file does not list")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("id", k + 1)
        try:
            ann["segmentation"] = encode_mask(decode_segmentation(ann.get("segmentation"),
                                                                  *sizes[ann["image_id"]]))
        except SamSrError as exc:
            raise SamSrError(f"annotations[{k}]: {exc}") from exc
        ann.setdefault("area", float(mu.area(ann["segmentation"])))
        if "bbox" not in ann:
            ann["bbox"] = [float(v) for v in mu.toBbox(ann["segmentation"])]
    with contextlib.redirect_stdout(_io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = data
        coco_gt.createIndex()
    out: dict[str, Any] = {name: _ap(coco_gt, dets) for name, dets in sets.items()}

    # mBA pairs: each detection with its best-IoU ground truth (same image and category)
    gt_by = {}
    for ann in data["annotations"]:
        if not ann["iscrowd"]:
            gt_by.setdefault((ann["image_id"], ann["category_id"]), []).append(ann)
    pairs = []
    for k, det in enumerate(sets["coarse"]):
        cands = gt_by.get((det["image_id"], det["category_id"]), [])
        if not cands:
            continue
        ious = mu.iou([det["segmentation"]], [a["segmentation"] for a in cands], [0] * len(cands))[0]
        j = int(np.argmax(ious))
        if ious[j] >= min_iou:
            pairs.append((k, cands[j]))
    per_image: dict[int, dict[str, list]] = {}
    scores = {name: {"mba": [], "iou": []} for name in sets}
    for k, ann in tqdm(pairs, desc="mBA", unit="pair", disable=not progress, dynamic_ncols=True):
        g = decode_rle(ann["segmentation"])
        rec = per_image.setdefault(ann["image_id"], {})
        for name, dets in sets.items():
            m = decode_rle(dets[k]["segmentation"])
            ba = boundary_accuracy(m, g)
            union = np.logical_or(m, g).sum()
            iou = float(np.logical_and(m, g).sum() / union) if union else 1.0
            scores[name]["mba"].append(ba)
            scores[name]["iou"].append(iou)
            rec.setdefault(f"mba_{name}", []).append(ba)
            rec.setdefault(f"iou_{name}", []).append(iou)
    for name in sets:
        out[name]["n_detections"] = len(sets[name])
        for key in ("mba", "iou"):
            vals = scores[name][key]
            out[name][key] = 100 * float(np.mean(vals)) if vals else None
    out["pairs"] = len(pairs)
    out["excluded"] = len(skip)
    out["min_iou"] = min_iou
    out["per_image"] = {iid: {"n": len(r["mba_coarse"]), **{k: float(np.mean(v)) for k, v in r.items()}}
                        for iid, r in per_image.items()}
    return out



def format_evaluation(ev: dict[str, Any]) -> str:
    """A markdown table of :func:`evaluate_coco`'s scores (rows coarse / refined / gain)."""
    def f(v):
        return "n/a" if v is None else f"{v:.2f}"
    lines = [f"| masks | AP | AP50 | AP75 | mBA ({ev['pairs']} pairs) | IoU (pairs) |",
             "|---|---|---|---|---|---|"]
    rows = [r for r in ("coarse", "refined") if r in ev]
    for r in rows:
        s = ev[r]
        lines.append(f"| {r} | {f(s['AP'])} | {f(s['AP50'])} | {f(s['AP75'])} | {f(s['mba'])} | {f(s['iou'])} |")
    if len(rows) == 2:
        gain = []
        for key in ("AP", "AP50", "AP75", "mba", "iou"):
            a, b = ev["coarse"][key], ev["refined"][key]
            gain.append("n/a" if a is None or b is None else f"{b - a:+.2f}")
        lines.append("| gain | " + " | ".join(gain) + " |")
    if ev.get("excluded"):
        lines.append(f"({ev['excluded']} instance(s) that could not be read are left out of both rows)")
    return "\n".join(lines) + "\n"

