"""Training data of SAM-SR v5's keep-or-change decision: the region step's changes on photos the
region network never trained on, each labelled by what taking it does to the IoU with the truth.

For each photo (or CamVid class) and each of its coarse masks, the bound v4 region step runs as at
inference (SAM's answers, the region network, the opening of the composition), and every change
(:mod:`sam_sr.variants.v5.changes`) is stored with its features, its area and how many of its pixels
the ground truth covers. From these the IoU of the coarse mask with any subset of its changes taken
follows exactly (:func:`subset_iou`), so the decision's labels and the selection of its thresholds
need no second run. Records are written per photo (``<out>/<dataset>/<id>.npz``) and skipped when
present: an interrupted run resumes.

Coarse masks per photo: the dataset's real ones (``real``; with ``real_binary`` also each of them
thresholded at 0.5, named ``realbin:<source>``), the evaluation's protocols
(``scale_gap_xK``, and ``gt``: the ground truth itself, a right mask), and ``k`` synthesised ones
(:func:`sam_sr.variants.v4.data.synthesize`'s region errors, and ``fill_holes``: the ground truth
with its holes filled). CamVid frames give per-class masks: the simulated segmenter's (x8, label
noise), the ground truth and ``k`` synthesised.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...errors import SamSrError
from ...imaging.write import atomic_write_bytes


def subset_iou(stats: dict[str, np.ndarray], take: np.ndarray) -> float:
    """IoU with the truth of a coarse mask with the changes ``take`` (bool (K,)) applied.

    Args:
        stats: ``inter``, ``union`` (the coarse mask's with the truth, px), ``area``, ``in_gt`` (K,)
            (each change's pixels, and those of them the truth covers), ``additions`` bool (K,).
    """
    inter, union = float(stats["inter"]), float(stats["union"])
    area, in_gt, add = (np.asarray(stats[k]) for k in ("area", "in_gt", "additions"))
    t = np.asarray(take, bool)
    inter += in_gt[t & add].sum() - in_gt[t & ~add].sum()
    union += (area - in_gt)[t & add].sum() - (area - in_gt)[t & ~add].sum()
    return inter / union if union else 1.0


def fill_holes(gt: np.ndarray) -> np.ndarray | None:
    """The ground truth with its enclosed holes filled (a segmenter that misses the holes), or None
    when it has none worth a sample (under 0.5% of its area)."""
    from .changes import holes
    h = holes(gt.astype(bool))
    if h.sum() < 0.005 * max(1, gt.sum()):
        return None
    return (gt.astype(bool) | h).astype(np.float32)


def change_records(stage, source, image: np.ndarray, gt: np.ndarray, coarse: list[tuple[str, np.ndarray]]
                   ) -> dict[str, np.ndarray]:
    """The decision's records of one photo: for each coarse mask, its changes' features and stats.

    Args:
        stage: a :class:`~sam_sr.variants.v4.RegionStage` bound to the model. source: a SAM source
            holding the photo. image: uint8 (H, W, 3). gt: bool (H, W). coarse: (source name, float32
            (H, W) in [0, 1]) pairs.

    Returns:
        flat arrays: ``features`` float32 (N, F) and ``area``, ``in_gt`` (N,), ``additions`` bool (N,),
        ``sample`` int (N,) (the coarse mask each change belongs to); per coarse mask ``names`` str,
        ``photo`` float32 (M, P), ``inter``, ``union`` (M,).
    """
    from .changes import find_changes
    feats, area, in_gt, adds, sample, names, photo, inter, union = [], [], [], [], [], [], [], [], []
    for m, (name, c) in enumerate(coarse):
        cf, logits, info, radius = stage.region(source, image, c)
        binary = cf >= 0.5
        ch = find_changes(binary, cf, logits, radius, list(info["sam"]),
                          [float(i.get("predicted_iou", 0.0)) for i in info["sam_info"]])
        k = len(ch)
        if k:
            counts = np.bincount(ch.labels.ravel(), minlength=k + 1)[1:]
            covered = np.bincount(ch.labels[gt].ravel(), minlength=k + 1)[1:]
            feats.append(ch.features)
            area.append(counts)
            in_gt.append(covered)
            adds.append(ch.additions)
            sample.append(np.full(k, m))
        names.append(name)
        photo.append(ch.photo)
        inter.append(int((binary & gt).sum()))
        union.append(int((binary | gt).sum()))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))  # noqa: E731
    from .changes import N_CHANGE, N_PHOTO
    return {"features": np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, N_CHANGE + N_PHOTO),
                                                                                        np.float32),
            "area": cat(area, np.int64), "in_gt": cat(in_gt, np.int64), "additions": cat(adds, bool),
            "sample": cat(sample, np.int64), "names": np.array(names), "photo": np.stack(photo).astype(np.float32),
            "inter": np.array(inter, np.int64), "union": np.array(union, np.int64)}


def _coarse_masks(spec: dict[str, Any], sample, gt: np.ndarray, rng: np.random.Generator, predictor
                  ) -> list[tuple[str, np.ndarray]]:
    """The coarse masks of one photo for ``spec`` (see the module docstring)."""
    from ...data.perturb import scale_gap
    from ...imaging.read import read_mask
    from ..v4.data import RegionSynthConfig, draw_modes, synthesize
    out = []
    if spec.get("real") and sample is not None:
        for src, p in sorted(sample.coarse.items()):
            c = read_mask(p)
            if c.shape != gt.shape:
                c = cv2.resize(c, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
            out.append((f"real:{src}", c))
            if spec.get("real_binary"):     # the same map thresholded, as segmenters' label outputs come
                out.append((f"realbin:{src}", (c >= 0.5).astype(np.float32)))
    for proto in spec.get("protocols", []):
        if proto == "gt":
            out.append(("gt", gt.astype(np.float32)))
        elif str(proto).startswith("scale_gap_x"):
            out.append((str(proto), scale_gap(gt, int(str(proto)[11:])).astype(np.float32)))
        else:
            raise SamSrError(f"unknown coarse protocol {proto!r} (gt, scale_gap_xK)")
    filled = fill_holes(gt) if spec.get("fill_holes") else None
    if filled is not None:
        out.append(("fill_holes", filled))
    synth = RegionSynthConfig()
    for mode in draw_modes(synth, int(spec.get("k", 0)), rng) if spec.get("k") else []:
        c, used = synthesize(gt, mode, rng, synth, predictor)
        out.append((used, c))
    return out


def build_decision_data(datasets: list[dict[str, Any]], out_root: str | Path, stage, source, seed: int = 0
                        ) -> dict[str, int]:
    """Make and store the decision's records (module docstring); stored photos are skipped.

    Args:
        datasets: specs ``{name, layout, root, ids_file?, k, real?, real_binary?, protocols?, fill_holes?}``
            (``layout`` as :func:`sam_sr.data.load_samples`, or ``camvid`` with ``split`` and
            ``classes_per_frame``; CamVid classes always get the simulated segmenter's mask).
        stage: the v4 region stage bound to the model. source: a live SAM source (with a cache).

    Returns:
        ``{"written", "skipped", "masks"}``.
    """
    from ..v4.data import new_items, seed_of
    out_root = Path(out_root)
    stats = {"written": 0, "skipped": 0, "masks": 0}
    for spec in datasets:
        name = spec["name"]
        for item_id, path, image, gt, extra in new_items(spec, out_root, stats, seed, "val", 2, "decision data"):
            if gt.all():
                continue
            rng = np.random.default_rng(seed_of(seed, "decision", name, item_id))
            predictor = source.predictor(image)
            coarse = _coarse_masks(spec, None if spec.get("layout") == "camvid" else extra, gt, rng, predictor)
            if spec.get("layout") == "camvid":
                coarse.insert(0, ("segmenter", extra))
            rec = change_records(stage, source, image, gt, coarse)
            buf = io.BytesIO()
            np.savez_compressed(buf, **rec)
            atomic_write_bytes(path, buf.getvalue())
            stats["written"] += 1
            stats["masks"] += len(coarse)
    return stats


def load_decision_data(root: str | Path, names: list[str]) -> list[dict[str, np.ndarray]]:
    """The stored records of datasets ``names``, one dict per photo (with ``dataset`` and ``id``).

    Raises:
        SamSrError: a dataset with no records.
    """
    out = []
    for name in names:
        files = sorted((Path(root) / name).glob("*.npz"))
        if not files:
            raise SamSrError(f"no decision records in {Path(root) / name}")
        for f in files:
            with np.load(f) as z:
                rec = {k: z[k] for k in z.files}
            rec["dataset"], rec["id"] = name, f.stem
            out.append(rec)
    return out
