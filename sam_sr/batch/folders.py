"""Folder runs: refine every coarse mask, or every label map, in a folder.

A run is planned first (:func:`plan_mask_folder`, :func:`plan_label_folder`): inputs are matched by
file stem and every output path is checked before anything is refined (no two inputs share a stem,
no output is an input, an output folder that is a file, a lossy output extension). The plan is a
list of JSON-able jobs, so it can be sharded over processes (:mod:`sam_sr.batch.parallel`). Then the jobs
run (:func:`run_mask_jobs`, :func:`run_label_jobs`) with a tqdm progress bar (with ETA): a bad item
(a missing mask, an unreadable or oversized photo, an existing output without ``force``, labels
above ``num_classes``, an unwritable output) is reported on stderr and in the summary, and the rest
go on. Outputs are written atomically.

The summary (JSON-able)::

    {"kind": "masks" | "labels", ("num_classes", "ignore_index": label maps), "total": N, "ok": n_ok, "failed": n_failed,
     "items": [{"index": i, "name": stem, "status": "ok" | "failed", "error": str | None,
                "image": path, "coarse": path, "out": path, "gt": path | None,
                "change": 1 - IoU(coarse, refined) (masks) or the fraction of pixels whose
                          label changed (label maps),
                "iou_coarse", "iou_refined", "mba_coarse", "mba_refined": in [0, 1], with
                          ground truth only (label maps: mIoU and multi-class mBA),
                "regions": {"proposed": n, "taken": k}: the region changes the model's
                          keep-or-change decision saw and took (masks, models with a decision)}, ...]}

``items`` are in job order; :func:`merge_summaries` joins the summaries of shards.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import SamSrError
from ..imaging.outputs import check_outputs, folder_outputs
from ..imaging.read import (IMAGE_EXTS, check_pair, list_images, read_image, read_label_map, read_mask,
                            to_rgb_uint8)
from ..imaging.write import MASK_FORMATS, mask_format, write_mask

MASK_EXTS = (".png",) + tuple(e for e in IMAGE_EXTS if e != ".png")


def _match(folder: Path | None, stem: str, exts: Sequence[str] = MASK_EXTS) -> str | None:
    """The file ``folder/<stem><ext>`` for the first extension in ``exts`` that exists."""
    if folder is None:
        return None
    for e in exts:
        for cand in (folder / f"{stem}{e}", folder / f"{stem}{e.upper()}"):
            if cand.is_file():
                return str(cand)
    return None


def _folder(path: str | os.PathLike, what: str) -> Path:
    d = Path(path)
    if not d.is_dir():
        raise SamSrError(f"{what} folder not found: {d}" + (" (it is a file)" if d.exists() else ""))
    return d


def _plan(images_dir, inputs_dir, out_dir, gt_dir, suffix: str, extra: dict[str, str],
          what: str, exts: Sequence[str]) -> list[dict[str, Any]]:
    images = list_images(_folder(images_dir, "images"))
    if not images:
        raise SamSrError(f"no images in {images_dir}")
    src = _folder(inputs_dir, what)
    gt = _folder(gt_dir, "ground-truth") if gt_dir is not None else None
    mask_format(f"x{suffix}")
    coarse = [_match(src, p.stem, exts) for p in images]
    gts = [_match(gt, p.stem, exts) for p in images]
    protected = [c for c in coarse + gts if c is not None]
    outs = folder_outputs(images, out_dir, suffix, protected=protected)
    jobs = []
    for i, (img, c, g, o) in enumerate(zip(images, coarse, gts, outs)):
        job = {"index": i, "name": img.stem, "image": str(img), "coarse": c, "gt": g, "out": str(o),
               "missing": None if c is not None else f"no {what} for {img.name} in {src}"}
        for key, tail in extra.items():
            job[key] = str(o.with_name(f"{o.stem}{tail}{suffix}"))
        jobs.append(job)
    # extra outputs (e.g. <stem>_soft.png) must not collide with another photo's output
    seen: dict[str, str] = {}
    for job in jobs:
        for key in ["out", *extra]:
            p = os.path.normcase(job[key])
            if p in seen:
                raise SamSrError(f"{job[key]} would be written twice (for {seen[p]} and "
                                 f"{job['image']}); rename one of the photos")
            seen[p] = job["image"]
    return jobs


def plan_mask_folder(images_dir: str | os.PathLike, masks_dir: str | os.PathLike,
                     out_dir: str | os.PathLike, suffix: str = ".png", soft: bool = False,
                     gt_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Jobs of a binary folder run: each photo in ``images_dir`` with the coarse mask of the same
    stem in ``masks_dir`` (``.png`` first, then the other image extensions), written to
    ``out_dir/<stem><suffix>`` (and ``<stem>_soft<suffix>`` with ``soft``).

    Args:
        suffix: ``.png`` or ``.tif``.
        gt_dir: optional ground-truth masks, matched by stem, for IoU/mBA in the summary and report.

    Returns:
        JSON-able job dicts (``index``, ``name``, ``image``, ``coarse``, ``gt``, ``out``, ``soft``;
        ``missing`` holds the error for a photo without a mask: it fails when run).

    Raises:
        SamSrError: a missing folder, no photos, two photos with the same stem, an output that is an
            input (e.g. ``out_dir`` is ``masks_dir``), a lossy or unknown ``suffix``.
    """
    return _plan(images_dir, masks_dir, out_dir, gt_dir, suffix, {"soft": "_soft"} if soft else {},
                 "coarse mask", MASK_EXTS)


def plan_label_folder(images_dir: str | os.PathLike, labels_dir: str | os.PathLike,
                      out_dir: str | os.PathLike, suffix: str = ".png",
                      gt_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Jobs of a label-map folder run: each photo with the label map of the same stem in
    ``labels_dir`` (``.png``, ``.tif``, ``.tiff``), written to ``out_dir/<stem><suffix>`` with the
    input's palette. Same returns and errors as :func:`plan_mask_folder`."""
    exts = (".png",) + tuple(e for e in MASK_FORMATS if e != ".png")
    return _plan(images_dir, labels_dir, out_dir, gt_dir, suffix, {}, "label map", exts)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SamSrError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _run(jobs: Sequence[dict[str, Any]], work: Callable[[dict[str, Any]], dict[str, Any]], kind: str,
         progress: bool, desc: str, verbose: bool, **extra: Any) -> dict[str, Any]:
    items = []
    bar = tqdm(jobs, desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    for job in bar:
        rec = {"index": job["index"], "name": job["name"], "image": job["image"],
               "coarse": job["coarse"], "gt": job.get("gt"), "out": job["out"], "status": "ok",
               "error": None}
        try:
            if job.get("missing"):
                raise SamSrError(job["missing"])
            rec.update(work(job))
        except Exception as exc:  # noqa: BLE001 - one bad item never stops a folder run
            rec["status"], rec["error"] = "failed", _error_text(exc)
            if verbose:
                tqdm.write(f"error: {Path(job['image']).name}: {rec['error']}", file=sys.stderr)
        items.append(rec)
    ok = sum(r["status"] == "ok" for r in items)
    return {"kind": kind, **extra, "total": len(items), "ok": ok, "failed": len(items) - ok,
            "items": items}


def _mask_scores(coarse: np.ndarray, refined: np.ndarray, gt_path: str | None,
                 hw: tuple[int, int]) -> dict[str, float]:
    from ..evaluation.metrics import boundary_accuracy, iou
    out = {"change": 1.0 - iou(coarse, refined)}
    if gt_path is not None:
        gt = read_mask(gt_path) >= 0.5
        if gt.shape != hw:
            raise SamSrError(f"ground truth {gt_path} is {gt.shape[1]}x{gt.shape[0]}, the photo "
                             f"{hw[1]}x{hw[0]}")
        out.update(iou_coarse=iou(coarse, gt), iou_refined=iou(refined, gt),
                   mba_coarse=boundary_accuracy(coarse, gt), mba_refined=boundary_accuracy(refined, gt))
    return out


class _Prefetch:
    """``read(job)`` of a list of jobs, the next ``ahead`` jobs' reads running in a background thread
    while the caller refines the current one (image decoding overlaps the refinement's compute; the
    JPEG and PNG decoders release the GIL). ``get(job)`` returns ``read(job)`` or raises its error."""

    def __init__(self, jobs: Sequence[dict[str, Any]], read: Callable[[dict[str, Any]], Any], ahead: int = 1):
        from concurrent.futures import ThreadPoolExecutor
        self.jobs, self.read, self.ahead = list(jobs), read, max(1, int(ahead))
        self.pos = {id(j): i for i, j in enumerate(self.jobs)}
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sam-sr-read")
        self.pending: dict[int, Any] = {}

    def _submit(self, i: int) -> None:
        if i < len(self.jobs) and i not in self.pending and not self.jobs[i].get("missing"):
            self.pending[i] = self.pool.submit(self.read, self.jobs[i])

    def get(self, job: dict[str, Any]) -> Any:
        i = self.pos.get(id(job))
        if i is None:                       # not one of the planned jobs: read it here
            return self.read(job)
        for k in range(i, i + self.ahead + 1):
            self._submit(k)
        return self.pending.pop(i).result()

    def window(self, job: dict[str, Any], n: int, wanted: Callable[[dict[str, Any]], bool]) -> list[Any]:
        """The reads of ``job`` and the ``n - 1`` jobs after it for which ``wanted(job)`` holds,
        waited for but kept for their own :meth:`get`; a read that failed is left out here (its
        :meth:`get` raises it)."""
        i = self.pos.get(id(job))
        if i is None:
            return []
        out = []
        for k in range(i, min(i + n, len(self.jobs))):
            if not wanted(self.jobs[k]):
                continue
            self._submit(k)
            future = self.pending.get(k)
            if future is not None and future.exception() is None:
                out.append(future.result())
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _sam_source(refiner, sam_batch: int):
    """The refiner's live SAM source where a folder run should encode ``sam_batch`` photos per call
    (:meth:`sam_sr.sam.source.LiveSam.prime`), else None: batch 1, no SAM, or onnxruntime (its SAM
    encoder session takes one photo)."""
    source = getattr(getattr(refiner, "sam_inputs", None), "source", None)
    info = getattr(refiner, "info", None) or {}
    if sam_batch <= 1 or not hasattr(source, "prime") or info.get("runtime"):
        return None
    return source


def _sam_sees(image: np.ndarray) -> bool:
    """Whether a refinement would give ``image`` to SAM (see :meth:`sam_sr.Refiner.predict`)."""
    from ..sam.stage import MAX_SAM_ASPECT, MIN_SAM_SIDE
    h, w = image.shape[:2]
    return min(h, w) >= MIN_SAM_SIDE and max(h, w) / min(h, w) <= MAX_SAM_ASPECT


def run_mask_jobs(refiner, jobs: Sequence[dict[str, Any]], force: bool = False,
                  progress: bool = True, desc: str = "refine", verbose: bool = True,
                  mask_threshold: float | None = None, sam_batch: int = 1) -> dict[str, Any]:
    """Refine the jobs of :func:`plan_mask_folder` with ``refiner`` (anything with
    ``predict(image, mask, mask_threshold)`` returning a :class:`~sam_sr.inference.predictor.Refinement`,
    e.g. :class:`sam_sr.Refiner`).

    Each output is a uint8 {0, 255} mask at the photo's full resolution (``soft``: the probability
    x 255, uint8). Existing outputs fail their item unless ``force``; an input is never overwritten.

    Args:
        progress: show a tqdm bar (with ETA); ``desc`` labels it.
        verbose: print ``error: <photo>: <reason>`` for each failed item on stderr.
        mask_threshold: binarise each coarse mask at this value in (0, 1) first (default: binary
            masks stay binary, soft ones are refined as they are; see ``Refiner.refine``).
        sam_batch: with a SAM-guided refiner, encode this many photos per call of SAM's image encoder
            (:meth:`sam_sr.sam.source.LiveSam.prime`, the photos read ahead); 1 (the default) encodes
            each photo when it is refined. The outputs are the same up to float rounding. Should a
            batch fail (e.g. out of GPU memory), the run warns once and goes on one photo at a time.

    Returns:
        The summary (module docstring). Never raises for a bad item.
    """
    source = _sam_source(refiner, sam_batch)
    reads = _Prefetch(jobs, lambda job: (read_image(job["image"]), read_mask(job["coarse"])),
                      ahead=sam_batch if source is not None else 1)
    primed_until = -1      # the last job index whose photo a batch has encoded

    def wanted(job) -> bool:   # a job whose photo will be refined (not missing, outputs free)
        return not job.get("missing") and (force or not any(
            p and Path(p).exists() for p in (job["out"], job.get("soft"))))

    def prime(job) -> None:
        nonlocal source, primed_until
        i = reads.pos.get(id(job), -1)
        if source is None or i <= primed_until:
            return
        primed_until = i + sam_batch - 1
        images = [to_rgb_uint8(im) for im, _ in reads.window(job, sam_batch, wanted)]
        try:
            source.prime([im for im in images if _sam_sees(im)], sam_batch)
        except (RuntimeError, MemoryError) as exc:
            tqdm.write(f"warning: SAM's encoder failed on a batch of {sam_batch} photos "
                       f"({str(exc).splitlines()[0][:120]}); going on one photo at a time", file=sys.stderr)
            source = None

    def work(job):
        outs = {"out": job["out"], "soft": job.get("soft")}
        check_outputs({"image": job["image"], "coarse mask": job["coarse"], "ground truth": job["gt"]},
                      outs, force, images=("out", "soft"))
        prime(job)
        image, mask = reads.get(job)
        check_pair(job["image"], image.shape[:2], np.asarray(mask).shape[:2])
        result = refiner.predict(image, mask, mask_threshold)
        binary, prob = result.mask, result.soft
        rec = _mask_scores(result.coarse, binary > 0, job.get("gt"), image.shape[:2])
        sam = result.info.get("sam") or {}
        if "taken" in sam:       # a model with a keep-or-change decision (the default)
            rec["regions"] = {"proposed": int(sam.get("changes", 0)), "taken": int(sam["taken"])}
        write_mask(job["out"], binary)
        if job.get("soft"):
            write_mask(job["soft"], (np.clip(prob, 0, 1) * 255 + 0.5).astype(np.uint8))
        return rec

    try:
        return _run(jobs, work, "masks", progress, desc, verbose)
    finally:
        reads.close()


def run_label_jobs(refiner, jobs: Sequence[dict[str, Any]], num_classes: int,
                   ignore_index: int | None = None, force: bool = False, progress: bool = True,
                   desc: str = "refine labels", verbose: bool = True, merge: str | None = None) -> dict[str, Any]:
    """Refine the label maps of :func:`plan_label_folder` with
    :func:`sam_sr.inference.labels.refine_semantic`, writing each with its input's dtype and palette.
    ``merge``: a name of :data:`sam_sr.inference.labels.LABEL_MERGES` (None: the default).

    A label map whose values are not classes 0..num_classes-1 (or ``ignore_index``), or whose size
    differs from its photo's, fails its item with an error naming the file.

    Returns:
        The summary (module docstring); with ground truth, ``iou_*`` are mIoU and ``mba_*``
        multi-class mBA (in [0, 1]). Never raises for a bad item.

    Raises:
        SamSrError: ``num_classes`` < 1 or an unknown ``merge`` (before any item runs).
    """
    from ..evaluation.metrics import SemanticScores
    from ..inference.labels import check_label_values, label_merge, refine_semantic

    merge_kwargs = label_merge(merge)

    check_label_values(np.zeros(1, np.int64), num_classes)

    def work(job):
        check_outputs({"image": job["image"], "label map": job["coarse"], "ground truth": job["gt"]},
                      {"out": job["out"]}, force, images=("out",))
        image = read_image(job["image"])
        labels, palette = read_label_map(job["coarse"])
        if labels.shape != image.shape[:2]:
            raise SamSrError(f"label map {job['coarse']} is {labels.shape[1]}x{labels.shape[0]}, "
                             f"its photo {image.shape[1]}x{image.shape[0]}")
        check_label_values(labels, num_classes, ignore_index, f"label map {job['coarse']}")
        result = refine_semantic(refiner, image, labels, num_classes, ignore_index, **merge_kwargs)
        rec: dict[str, Any] = {"change": float((result != labels).mean())}
        if job.get("gt"):
            gt, _ = read_label_map(job["gt"])
            if gt.shape != labels.shape:
                raise SamSrError(f"ground truth {job['gt']} differs in size from its photo")
            for key, pred in (("coarse", labels), ("refined", result)):
                s = SemanticScores(num_classes, ignore_index)
                s.add(pred, gt)
                summ = s.summary()
                rec[f"iou_{key}"], rec[f"mba_{key}"] = summ["miou"] / 100, summ["mba"] / 100
        write_mask(job["out"], result.astype(labels.dtype), palette=palette)
        return rec

    return _run(jobs, work, "labels", progress, desc, verbose, num_classes=num_classes,
                ignore_index=ignore_index)


def merge_summaries(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary from the summaries of shards of one run (items sorted by job index)."""
    if not parts:
        raise SamSrError("no summaries to merge")
    kinds = {p.get("kind") for p in parts}
    if len(kinds) != 1:
        raise SamSrError(f"cannot merge summaries of different kinds {sorted(map(str, kinds))}")
    items = sorted((it for p in parts for it in p["items"]), key=lambda r: r["index"])
    ok = sum(r["status"] == "ok" for r in items)
    extra = {k: v for k, v in parts[0].items() if k not in ("kind", "total", "ok", "failed", "items")}
    return {"kind": kinds.pop(), **extra, "total": len(items), "ok": ok, "failed": len(items) - ok,
            "items": items}


def summary_line(summary: dict[str, Any], out_dir: str | os.PathLike | None = None) -> str:
    """``refined 9 of 10 images into OUT; 1 failed`` (and mean IoU/mBA gains with ground truth)."""
    s = summary
    line = f"refined {s['ok']} of {s['total']} images" + (f" into {out_dir}" if out_dir else "")
    if s["failed"]:
        line += f"; {s['failed']} failed"
    scored = [r for r in s["items"] if r["status"] == "ok" and r.get("iou_coarse") is not None]
    if scored:
        d_iou = 100 * np.mean([r["iou_refined"] - r["iou_coarse"] for r in scored])
        d_mba = 100 * np.mean([r["mba_refined"] - r["mba_coarse"] for r in scored])
        line += f"; vs ground truth ({len(scored)} images): IoU {d_iou:+.2f}, mBA {d_mba:+.2f} points"
    return line
