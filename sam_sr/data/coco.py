"""COCO files and instance masks: read results and annotation files, map image ids to photos, convert
segmentations (compressed or uncompressed RLE, polygons) to and from binary masks, and build a COCO
instance set from binary masks (``scripts/make_sod_coco.py``).

Input is a COCO *results* file, as Detectron2, MMDetection or YOLO write it: a JSON list of
``{"image_id", "category_id", "score", "segmentation"}`` with the segmentation as compressed RLE
(``counts`` a string), uncompressed RLE (``counts`` a list) or polygons. Photos are found through
:func:`image_table`: a COCO annotation file's ``images`` list (``id`` -> ``file_name``, resolved in an
image folder or next to the annotation file), or an image folder alone whose file stems are the ids
(COCO's ``000000397133.jpg``). RLE goes through pycocotools' ``mask`` module.

Refining such a file: :mod:`sam_sr.batch.coco`; scoring it: :mod:`sam_sr.evaluation.coco`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import SamSrError
from ..imaging.outputs import check_output_path
from ..imaging.read import list_images, read_image, read_mask
from ..imaging.write import atomic_write_bytes


def mask_utils():
    try:
        import pycocotools.mask as mask_utils
    except ImportError as exc:  # pragma: no cover - a dependency of sam-sr
        raise SamSrError("COCO support needs pycocotools (pip install pycocotools)") from exc
    return mask_utils



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



def is_number(v: Any) -> bool:
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



def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    import warnings
    with warnings.catch_warnings():     # pycocotools' NumPy 2 copy-keyword deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils().decode(rle).astype(bool)



def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons) -> bool (height, width).

    Raises:
        SamSrError: not one of those forms, an RLE whose ``size`` is not (height, width) or whose
            counts do not cover it, a polygon with fewer than 3 points or non-numeric coordinates.
    """
    mu = mask_utils()
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
            return decode_rle(rle)
        except ValueError as exc:
            raise SamSrError(f"invalid RLE: {exc}") from exc
    if isinstance(seg, list):
        if not seg:
            return np.zeros((height, width), bool)
        for poly in seg:
            if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0
                    and all(is_number(v) for v in poly)):
                raise SamSrError("a polygon must be a flat list [x1, y1, x2, y2, ...] of at least 3 "
                                 "points with finite coordinates")
        rles = mu.frPyObjects([[float(v) for v in p] for p in seg], height, width)
        return decode_rle(mu.merge(rles))
    raise SamSrError(f"segmentation must be an RLE dict or a list of polygons, got {type(seg).__name__}")



def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """bool/uint8 (H, W), nonzero = inside -> compressed RLE ``{"size": [H, W], "counts": str}``."""
    rle = mask_utils().encode(np.asfortranarray(np.asarray(mask) > 0, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}



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
    y0, x0, y1, x1 = mask_box(mask)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1
