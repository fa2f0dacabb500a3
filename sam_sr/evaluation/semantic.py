"""Evaluation of semantic refinement and SAM fusion on a label-map dataset (CamVid layout).

Layout: ``<root>/<split>/images/<id>.jpg`` and ``<root>/<split>/labels/<id>.png`` (class indices,
``ignore_index`` = void). Coarse label maps come from a simulated low-resolution segmenter
(:func:`sam_sr.inference.labels.simulate_coarse_labels`). Methods:

- ``baseline``: the coarse label map;
- ``refine``: :func:`sam_sr.inference.labels.refine_semantic` with the binary refiner;
- ``majority``: (a) SAM automatic masks, majority vote;
- ``prompt:<kind>``: (b) per-class prompts from the coarse map, kinds of :data:`sam_sr.sam.label_fusion.PROMPTS`;
- ``det:coarse``: (c) SAM box prompts from "detections" = connected components of the coarse map's
  object classes (a stand-in detector that sees only the coarse map);
- ``det:oracle``: (c) with boxes of the ground truth's object components: an upper bound for a
  detector, not a result any detector gave;
- ``det:<folder>``: (c) with real detections, ``<folder>/<id>.json`` (see :func:`read_detections`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data.labels import simulate_coarse_labels
from ..errors import SamSrError
from ..imaging.read import read_image, read_label_map
from ..inference.labels import refine_semantic
from .metrics import SemanticScores

CAMVID_CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "sign/symbol", "fence", "car",
                  "pedestrian", "bicyclist"]
CAMVID_OBJECTS = [2, 6, 8, 9, 10]


def list_pairs(root: str | Path, split: str) -> list[tuple[str, Path, Path]]:
    """(id, image, label) of a split, sorted by id."""
    d = Path(root) / split
    if not (d / "images").is_dir() or not (d / "labels").is_dir():
        raise SamSrError(f"{d} needs images/ and labels/ folders")
    out = [(p.stem, p, d / "labels" / f"{p.stem}.png") for p in sorted((d / "images").iterdir())
           if (d / "labels" / f"{p.stem}.png").is_file()]
    if not out:
        raise SamSrError(f"no image/label pairs in {d}")
    return out


def evaluate_semantic(pairs, methods: list[str], num_classes: int, ignore_index: int | None,
                      factor: int = 8, noise: float = 0.0, refiner=None, sam=None,
                      points_per_side: int = 16, objects: list[int] | None = None,
                      seed: int = 0, merge: str | None = None) -> dict[str, Any]:
    """Score each method on each pair; returns ``{method: SemanticScores.summary()}``. ``merge``:
    how ``refine`` merges its classes, a name of :data:`sam_sr.inference.labels.LABEL_MERGES` (None:
    the default).

    Raises:
        SamSrError: a method needs a refiner or SAM that was not given, an unknown method or merge.
    """
    from ..inference.labels import label_merge
    merge_kwargs = label_merge(merge)
    from ..sam.label_fusion import (
        PROMPTS,
        boxes_from_labels,
        detection_fusion,
        majority_vote,
        prompt_fusion,
        read_detections,
    )
    objects = CAMVID_OBJECTS if objects is None else objects
    for m in methods:
        known = m in ("baseline", "refine", "majority") or m.startswith(("prompt:", "det:"))
        if not known or (m.startswith("prompt:") and m[7:] not in PROMPTS):
            raise SamSrError(f"unknown method {m!r}")
        if m == "refine" and refiner is None:
            raise SamSrError("method 'refine' needs a refiner")
        if m not in ("baseline", "refine") and sam is None:
            raise SamSrError(f"method {m!r} needs SAM (--sam-checkpoint)")
    scores = {m: SemanticScores(num_classes, ignore_index) for m in methods}
    pred = gen = None
    if sam is not None:
        from ..sam import mask_generator, predictor
        pred = predictor(sam)
        gen = mask_generator(sam, points_per_side=points_per_side)
    for i, (pid, img_path, lab_path) in enumerate(tqdm(pairs, desc="semantic eval", unit="img")):
        image = read_image(img_path)
        gt, _ = read_label_map(lab_path)
        coarse = simulate_coarse_labels(gt, factor, noise, ignore_index, seed=seed + i)
        image_set = False
        for m in methods:
            if m == "baseline":
                out = coarse
            elif m == "refine":
                out = refine_semantic(refiner, image, coarse, num_classes, ignore_index, **merge_kwargs)
            elif m == "majority":
                out = majority_vote(coarse, gen.generate(image), ignore_index)
            else:
                if not image_set:
                    pred.set_image(image)
                    image_set = True
                if m.startswith("prompt:"):
                    out = prompt_fusion(pred, image, coarse, m[7:], ignore_index, image_is_set=True)
                else:
                    src = m[4:]
                    if src == "coarse":
                        dets = boxes_from_labels(coarse, objects)
                    elif src == "oracle":
                        dets = boxes_from_labels(gt, objects)
                    else:
                        dets = read_detections(Path(src) / f"{pid}.json")
                    out = detection_fusion(pred, image, coarse, dets, image_is_set=True)
            scores[m].add(out, gt)
    return {m: s.summary() for m, s in scores.items()}


def format_semantic_table(results: dict[str, Any]) -> str:
    """Markdown table: one row per method, dataset scores and per-image mBA (percent)."""
    lines = ["| method | mIoU | mAcc | PA | Dice | F1 | mBA | mIoU gain |", "|---|---|---|---|---|---|---|---|"]
    base = results.get("baseline", {}).get("miou")
    for m, r in results.items():
        gain = "" if base is None else f"{r['miou'] - base:+.2f}"
        lines.append(f"| {m} | {r['miou']:.2f} | {r['macc']:.2f} | {r['pa']:.2f} | {r['mdice']:.2f} | "
                     f"{r['mf1']:.2f} | {r['mba']:.2f} | {gain} |")
    return "\n".join(lines) + "\n"
