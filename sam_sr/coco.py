"""COCO instance masks: refine a results file, score it, and build a COCO set from binary masks.

Input is a COCO *results* file, as Detectron2, MMDetection or YOLO write it: a JSON list of
``{"image_id", "category_id", "score", "segmentation"}`` with the segmentation as compressed RLE
(``counts`` a string), uncompressed RLE (``counts`` a list) or polygons. Photos are found through
:func:`image_table`: a COCO annotation file's ``images`` list (``id`` -> ``file_name``, resolved in an
image folder or next to the annotation file), or an image folder alone whose file stems are the ids
(COCO's ``000000397133.jpg``).

Refinement (:func:`refine_coco`): each instance is refined in a crop of the photo at full
resolution: the instance's box plus context on each side of ``pad`` times the box's longer side and
at least ``min_context`` pixels, clipped to the photo. The refined crop is pasted back (the instance
is empty outside its crop). The output is the same list, in the same order, with each refined
instance's ``segmentation`` replaced by compressed RLE (``counts`` a string); every other key (ids,
category, score, bbox) is kept. Empty instances and failed ones (an unreadable photo, a bad RLE or
polygon, a size that does not match the photo) are reported in the summary and kept unchanged.

Evaluation (:func:`evaluate_coco`): mask AP, AP50 and AP75 from pycocotools' ``COCOeval``
(``iouType="segm"``), in percent; and mean mBA (:func:`sam_sr.metrics.boundary_accuracy`, CascadePSP's
definition, on the full photo): each detection is paired with the ground-truth instance of the same
photo and category (not crowd) that has the highest mask IoU with the *unrefined* detection; pairs
with IoU below ``min_iou`` (default 0.5) are left out; the same pairs are scored before and after
refinement, so the two means are over the same instances.
"""
from __future__ import annotations

import contextlib
import copy
import io as _io
import json
import math
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from .errors import SamSrError
from .io import atomic_write_bytes, check_output_path, list_images, read_image, read_mask


def _mask_utils():
    try:
        import pycocotools.mask as mask_utils
    except ImportError as exc:  # pragma: no cover - a dependency of sam-sr
        raise SamSrError("COCO support needs pycocotools (pip install pycocotools)") from exc
    return mask_utils


# ------------------------------------------------------------------------------------ files


def load_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file. Raises :class:`SamSrError` naming the file if missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"{what} not found: {p}")
    try:
        with open(p, "rb") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SamSrError(f"cannot read {what} {p}: {exc}") from exc


def load_results(results: str | os.PathLike | list) -> list[Any]:
    """A COCO results list, from a file or as given. Items are checked when used (a bad item fails
    alone).

    Raises:
        SamSrError: missing or malformed file, or not a JSON list (an annotation file's dict is
            named as such).
    """
    data = load_json(results, "COCO results file") if isinstance(results, (str, os.PathLike)) else results
    if isinstance(data, dict) and "annotations" in data:
        raise SamSrError(f"{results} is a COCO annotation file (a dict with 'annotations'), not a results "
                         f"list; pass it as the annotations, or pass its 'annotations' list as results")
    if not isinstance(data, list):
        raise SamSrError(f"COCO results must be a JSON list of instances, got {type(data).__name__}")
    return data


def write_json(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON atomically (compact by default: results files can be large)."""
    text = json.dumps(data, indent=indent, separators=None if indent else (",", ":"))
    atomic_write_bytes(path, (text + "\n").encode())


def image_table(annotations: str | os.PathLike | dict | None = None,
                images_dir: str | os.PathLike | None = None) -> dict[int, dict[str, Any]]:
    """Map COCO image ids to photo files.

    Args:
        annotations: a COCO annotation file (or its dict) whose ``images`` list gives ``id``,
            ``file_name`` and optionally ``height``/``width``. A relative ``file_name`` is looked up
            in ``images_dir``, or next to the annotation file when no ``images_dir`` is given.
        images_dir: a folder of photos; alone, each photo whose stem is an integer is that image id.

    Returns:
        ``{image_id: {"path": str, "height": int | None, "width": int | None}}``.

    Raises:
        SamSrError: neither argument, ``images_dir`` that is not a folder, a malformed ``images``
            list, a duplicate id, no photos.
    """
    if annotations is None and images_dir is None:
        raise SamSrError("give an image folder, a COCO annotation file, or both")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise SamSrError(f"image folder not found: {images_dir}" +
                         (" (it is a file)" if Path(images_dir).exists() else ""))
    table: dict[int, dict[str, Any]] = {}
    if annotations is not None:
        data = annotations if isinstance(annotations, dict) else load_json(annotations, "COCO annotation file")
        base = Path(images_dir) if images_dir is not None else \
            (Path(annotations).parent if not isinstance(annotations, dict) else Path("."))
        imgs = data.get("images") if isinstance(data, dict) else None
        if not isinstance(imgs, list):
            raise SamSrError("a COCO annotation file needs an 'images' list")
        for k, im in enumerate(imgs):
            if not isinstance(im, dict) or not isinstance(im.get("id"), int) or \
                    not isinstance(im.get("file_name"), str):
                raise SamSrError(f"images[{k}] of the annotation file needs an integer 'id' and a "
                                 f"'file_name'")
            if im["id"] in table:
                raise SamSrError(f"image id {im['id']} appears twice in the annotation file")
            fn = Path(im["file_name"])
            h, w = im.get("height"), im.get("width")
            table[im["id"]] = {"path": str(fn if fn.is_absolute() else base / fn),
                               "height": h if isinstance(h, int) else None,
                               "width": w if isinstance(w, int) else None}
    else:
        for p in list_images(images_dir):
            try:
                iid = int(p.stem)
            except ValueError:
                continue
            if iid in table:
                raise SamSrError(f"{table[iid]['path']} and {p} both have image id {iid}")
            table[iid] = {"path": str(p), "height": None, "width": None}
        if not table:
            raise SamSrError(f"no photo in {images_dir} is named by an integer image id; give the "
                             f"COCO annotation file that maps ids to file names")
    return table


# ------------------------------------------------------------------------------------ masks


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _string_counts(counts: bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE string (COCO's format: each count in 5-bit groups
    offset by 48, a continuation bit 0x20, a sign bit 0x10 in the last group, counts after the
    second stored as differences to the count two before)."""
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise SamSrError("invalid RLE: the counts string ends inside a number")
            c = counts[p] - 48
            if not 0 <= c < 64:
                raise SamSrError("invalid RLE: a character outside the RLE alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _decode(rle: dict[str, Any]) -> np.ndarray:
    import warnings
    with warnings.catch_warnings():     # pycocotools' NumPy 2 copy-keyword deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return _mask_utils().decode(rle).astype(bool)


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons) -> bool (height, width).

    Raises:
        SamSrError: not one of those forms, an RLE whose ``size`` is not (height, width) or whose
            counts do not cover it, a polygon with fewer than 3 points or non-numeric coordinates.
    """
    mu = _mask_utils()
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) for s in size)):
            raise SamSrError("an RLE needs 'size': [height, width]")
        if list(size) != [height, width]:
            raise SamSrError(f"RLE size {size[0]}x{size[1]} (h x w) differs from the photo's "
                             f"{height}x{width}")
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
                raise SamSrError("uncompressed RLE counts must be non-negative integers summing to "
                                 "height x width")
            rle = mu.frPyObjects(seg, height, width)
        elif isinstance(counts, (str, bytes)):
            raw = counts.encode("ascii", "replace") if isinstance(counts, str) else counts
            runs = _string_counts(raw)
            if any(c < 0 for c in runs) or sum(runs) != height * width:
                raise SamSrError(f"invalid RLE: its runs cover {sum(runs)} pixels, not "
                                 f"{height} x {width} = {height * width}")
            rle = {"size": size, "counts": raw}
        else:
            raise SamSrError("RLE 'counts' must be a string (compressed) or a list of integers")
        try:
            return _decode(rle)
        except ValueError as exc:
            raise SamSrError(f"invalid RLE: {exc}") from exc
    if isinstance(seg, list):
        if not seg:
            return np.zeros((height, width), bool)
        for poly in seg:
            if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0
                    and all(_is_number(v) for v in poly)):
                raise SamSrError("a polygon must be a flat list [x1, y1, x2, y2, ...] of at least 3 "
                                 "points with finite coordinates")
        rles = mu.frPyObjects([[float(v) for v in p] for p in seg], height, width)
        return _decode(mu.merge(rles))
    raise SamSrError(f"segmentation must be an RLE dict or a list of polygons, got {type(seg).__name__}")


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """bool/uint8 (H, W), nonzero = inside -> compressed RLE ``{"size": [H, W], "counts": str}``."""
    rle = _mask_utils().encode(np.asfortranarray(np.asarray(mask) > 0, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1


def context_box(mask: np.ndarray, pad: float = 0.5, min_context: int = 32) -> tuple[int, int, int, int]:
    """The crop an instance is refined in, (y0, x0, y1, x1) in pixels (end exclusive): the mask's
    box with ``max(min_context, pad * longer box side)`` pixels added on each side, clipped to the
    photo.

    Raises:
        SamSrError: an empty mask, ``pad`` < 0 or ``min_context`` < 0.
    """
    if pad < 0 or min_context < 0:
        raise SamSrError(f"pad and min_context must be >= 0, got {pad}, {min_context}")
    box = _box(np.asarray(mask) > 0)
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


# ------------------------------------------------------------------------------------ refinement


def plan_coco(results: Sequence[Any], images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs of a COCO run, one per photo (in order of first appearance): ``{"index", "name",
    "image_id", "image", "height", "width", "instances": [result indices], "missing": error or
    None}``. Items that are not dicts with an integer ``image_id`` form one job with ``image_id``
    None that fails. JSON-able, for :mod:`sam_sr.parallel`."""
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


# ------------------------------------------------------------------------------------ evaluation


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
        if not isinstance(it.get("category_id"), int) or not _is_number(it.get("score")):
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

    mu = _mask_utils()
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
        g = _decode(ann["segmentation"])
        rec = per_image.setdefault(ann["image_id"], {})
        for name, dets in sets.items():
            m = _decode(dets[k]["segmentation"])
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


def failed_instances(summary: dict[str, Any]) -> list[int]:
    """Indices of the instances a refinement run (:func:`run_coco_jobs`' summary) failed on."""
    return [it["index"] for it in summary["items"] if it["status"] == "failed"]


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


# ------------------------------------------------------------------------------------ building a set


def components(mask: np.ndarray, min_area: int = 1) -> list[np.ndarray]:
    """The 8-connected components of a binary (H, W) mask with at least ``min_area`` pixels, as
    bool masks, largest first (OpenCV ``connectedComponentsWithStats``)."""
    import cv2
    n, lab, stats, _ = cv2.connectedComponentsWithStats((np.asarray(mask) > 0).astype(np.uint8), connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [lab == i for i in order if stats[i, cv2.CC_STAT_AREA] >= min_area]


def coco_from_masks(ids: Sequence[str], images_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                    coarse_dir: str | os.PathLike, out_dir: str | os.PathLike, threshold: int = 128,
                    min_area: int = 64, category: str = "salient object", force: bool = False,
                    image_ext: str = ".jpg", mask_ext: str = ".png") -> dict[str, Any]:
    """Build a small COCO instance set from binary ground truth and soft coarse maps (e.g. sod).

    - ``annotations.json``: one image per id (``id`` = the id as an integer when it is one, else
      its 1-based position; ``file_name`` = ``<id><image_ext>``, relative to ``images_dir``), one
      category; ground-truth instances = 8-connected components of ``gt_dir/<id><mask_ext>``
      (thresholded at half range); components under ``min_area`` pixels are marked ``iscrowd: 1``
      (ignored by COCOeval, not counted as misses).
    - ``detections.json``: a results list; detections = 8-connected components (at least
      ``min_area`` pixels) of ``coarse_dir/<id><mask_ext>`` >= ``threshold`` (uint8 maps 0..255),
      score = the mean coarse value in the component / 255, segmentation compressed RLE.

    Returns:
        ``{"annotations": path, "detections": path, "images": n, "instances": n, "crowd": n,
        "detections_n": n}``.

    Raises:
        SamSrError: a missing or unreadable file, sizes that differ, existing outputs without
            ``force``, an unwritable ``out_dir``.
    """
    out = Path(out_dir)
    ann_path, det_path = out / "annotations.json", out / "detections.json"
    for p in (ann_path, det_path):
        check_output_path(p, force)
    images, anns, dets = [], [], []
    used: set[int] = set()
    for k, sid in enumerate(tqdm(list(ids), desc="build coco", unit="img")):
        iid = int(sid) if str(sid).isdigit() else k + 1
        if iid in used:
            raise SamSrError(f"image id {iid} (from {sid!r}) is used twice")
        used.add(iid)
        img_path = Path(images_dir) / f"{sid}{image_ext}"
        image = read_image(img_path)
        h, w = image.shape[:2]
        gt = read_mask(Path(gt_dir) / f"{sid}{mask_ext}") >= 0.5
        coarse = read_mask(Path(coarse_dir) / f"{sid}{mask_ext}")
        if gt.shape != (h, w) or coarse.shape != (h, w):
            raise SamSrError(f"{sid}: photo, ground truth and coarse map differ in size")
        images.append({"id": iid, "file_name": img_path.name, "height": h, "width": w})
        for comp in components(gt):
            rle = encode_mask(comp)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1, "segmentation": rle,
                         "area": int(comp.sum()), "bbox": _xywh(comp),
                         "iscrowd": int(comp.sum() < min_area)})
        level = np.round(coarse * 255)          # the map's 0..255 values (exact comparison)
        for comp in components(level >= threshold, min_area):
            dets.append({"image_id": iid, "category_id": 1,
                         "score": round(float(coarse[comp].mean()), 6),
                         "segmentation": encode_mask(comp), "bbox": _xywh(comp)})
    data = {"info": {"description": "sam-sr COCO set built from binary masks (coco_from_masks)",
                     "threshold": threshold, "min_area": min_area},
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": category, "supercategory": category}]}
    write_json(ann_path, data)
    write_json(det_path, dets)
    return {"annotations": str(ann_path), "detections": str(det_path), "images": len(images),
            "instances": sum(not a["iscrowd"] for a in anns),
            "crowd": sum(a["iscrowd"] for a in anns), "detections_n": len(dets)}


def _xywh(mask: np.ndarray) -> list[float]:
    y0, x0, y1, x1 = _box(mask)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
