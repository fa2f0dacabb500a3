"""SAM-SR ablation: coarse, CRM, v1, v2.1, v2.2, v3.1-v3.4 scored on the same images and coarse sources.

Every variant is a checkpoint trained with its ``configs/experiments/sam_sr/<variant>.yaml`` (same data, same
budget); v1 runs the CRM checkpoint with SAM's union as its input unless a v1 checkpoint exists. SAM
outputs come from the cache (``scripts/precompute_sam.py``), so the ablation runs SAM only for v2.2's
prompts. Results: IoU (mean over images, cumulative) and mBA per variant and coarse source, the mean
gain over the coarse masks across sources, and per-image IoU for picking figure examples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.datasets import Sample
from ..errors import SamSrError
from ..imaging.read import read_image, read_mask
from ..variants import get_variant
from .evaluate import coarse_for
from .metrics import BinaryScores, iou


def checkpoint_for(runs: str | Path, variant: str) -> Path:
    """``<runs>/<variant>/final.pt``; when that does not exist, the first existing run of a variant
    whose checkpoints this one runs (:attr:`VariantSpec.runs_checkpoints_of`: v1 runs CRM's).

    Raises:
        SamSrError: unknown variant, or no checkpoint (train it with ``configs/experiments/sam_sr/<variant>.yaml``).
    """
    runs = Path(runs)
    p = runs / variant / "final.pt"
    for other in get_variant(variant).runs_checkpoints_of:
        if not p.is_file():
            p = runs / other / "final.pt"
    if not p.is_file():
        raise SamSrError(f"no checkpoint for {variant} at {p}: train it with "
                         f"accelerate launch train.py --config configs/experiments/sam_sr/{variant}.yaml")
    return p


def run_ablation(refiners: dict[str, Any], samples: list[Sample], sources: list[str]) -> dict[str, Any]:
    """Score the coarse masks and every refiner on every (image, source).

    Args:
        refiners: variant name -> :class:`sam_sr.Refiner` (with its SAM inputs).
        samples: evaluation samples. sources: coarse sources (see :mod:`sam_sr.evaluation`).

    Returns:
        ``{"results": {source: {row: summary}}, "per_image": {source: {row: [IoU % per image]}},
        "ids": [...], "v1_used_sam": share of v1 inputs that used SAM's union}``; rows are
        ``coarse`` and the variants, summaries as :meth:`BinaryScores.summary`.
    """
    rows = ["coarse", *refiners]
    scores = {s: {r: BinaryScores() for r in rows} for s in sources}
    per_image: dict[str, dict[str, list[float]]] = {s: {r: [] for r in rows} for s in sources}
    v1_used = []
    for sample in tqdm(samples, desc="ablation", unit="img"):
        image = read_image(sample.image)
        gt = read_mask(sample.mask) >= 0.5
        for src in sources:
            coarse = coarse_for(sample, src, gt) >= 0.5
            scores[src]["coarse"].add(coarse, gt)
            per_image[src]["coarse"].append(100 * iou(coarse, gt))
            for name, refiner in refiners.items():
                out = refiner.refine(image, coarse) > 0
                if name == "v1":
                    v1_used.append(bool(refiner.last_info.get("sam", {}).get("used_sam")))
                scores[src][name].add(out, gt)
                per_image[src][name].append(100 * iou(out, gt))
    return {"results": {s: {r: v.summary() for r, v in d.items()} for s, d in scores.items()},
            "per_image": per_image, "ids": [s.id for s in samples],
            "v1_used_sam": float(np.mean(v1_used)) if v1_used else None}


def format_ablation(results: dict[str, Any]) -> str:
    """Markdown table: one row per variant, IoU mean / mBA per source, and the mean gain over the
    coarse masks across sources (as the SAM-SR thesis reports it)."""
    sources = list(results)
    rows = list(results[sources[0]])
    head = "| model | " + " | ".join(f"{s} IoU / mBA" for s in sources) + " | mean gain IoU / mBA |"
    lines = [head, "|---" * (len(sources) + 2) + "|"]
    for r in rows:
        cells = [f"{results[s][r]['iou_mean']:.2f} / {results[s][r]['mba']:.2f}" for s in sources]
        gi = np.mean([results[s][r]["iou_mean"] - results[s]["coarse"]["iou_mean"] for s in sources])
        gb = np.mean([results[s][r]["mba"] - results[s]["coarse"]["mba"] for s in sources])
        lines.append(f"| {r} | " + " | ".join(cells) + f" | {gi:+.2f} / {gb:+.2f} |")
    return "\n".join(lines) + "\n"


def pick_examples(per_image: dict[str, list[float]], a: str, b: str, n_win: int = 2,
                  n_loss: int = 1) -> list[tuple[int, float]]:
    """Indices of images where ``b`` beats ``a`` most (``n_win``) and loses most (``n_loss``) in
    IoU, as ``(index, IoU(b) - IoU(a))``; images with no difference are never picked."""
    d = np.asarray(per_image[b]) - np.asarray(per_image[a])
    order = np.argsort(-d)
    wins = [(int(i), float(d[i])) for i in order[:n_win] if d[i] > 0]
    losses = [(int(i), float(d[i])) for i in order[::-1][:n_loss] if d[i] < 0]
    return wins + losses


def best_variant(results: dict[str, Any], baseline: str = "crm") -> str | None:
    """The row (other than ``coarse`` and ``baseline``) with the highest mean of IoU mean + mBA over
    the sources of ``results`` (``run_ablation(...)["results"]``); None when there is none."""
    sources = list(results)
    rows = [r for r in results[sources[0]] if r not in ("coarse", baseline)]
    if not rows:
        return None
    score = {r: np.mean([results[s][r]["iou_mean"] + results[s][r]["mba"] for s in sources]) for r in rows}
    return max(score, key=score.get)
