"""Evaluation of a refiner over a dataset with coarse masks from one or more segmenters.

For each coarse source the coarse masks and the refined masks are scored against the ground truth:
IoU as the mean over images and as dataset-cumulative (sum I / sum U, as CRM reports on BIG), and mBA
(CascadePSP's definition, see :mod:`sam_sr.evaluation.metrics`). Sources are real coarse-mask folders of the
dataset (e.g. ``picanet``, ``dss``, ``amulet``) and three synthetic ones: ``scale_gap_xK`` (ground truth
downsampled xK, K >= 2, and upsampled bilinearly, thresholded at 0.5: a right but coarse mask),
``blocky_xK`` (the same upsampled by nearest neighbour: a staircase of period K px) and ``gt`` (the
ground truth itself: a right mask, which a refiner must not make worse).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.datasets import Sample
from ..data.perturb import blocky, scale_gap
from ..errors import SamSrError
from ..imaging.read import read_image, read_mask
from ..imaging.write import atomic_write_bytes
from .metrics import BinaryScores

#: The synthetic coarse sources: the ground truth itself, and ``scale_gap_x`` (bilinear) or ``blocky_x``
#: (nearest neighbour) followed by a factor.
GT_SOURCE, SCALE_GAP, BLOCKY = "gt", "scale_gap_x", "blocky_x"


def scale_gap_factor(source: str, prefix: str = SCALE_GAP) -> int | None:
    """K of ``scale_gap_xK`` (or of ``blocky_xK`` with ``prefix=BLOCKY``; an integer >= 2), or None
    for another source name.

    Raises:
        SamSrError: the prefix followed by anything but an integer >= 2.
    """
    if not source.startswith(prefix):
        return None
    k = source[len(prefix):]
    if not k.isdigit() or int(k) < 2:
        raise SamSrError(f"coarse source {source!r}: the factor must be an integer >= 2, e.g. {prefix}8")
    return int(k)


def check_sources(sources: list[str], samples: list[Sample]) -> None:
    """Refuse unknown coarse sources before a run starts: each must be ``gt``, ``scale_gap_xK`` or a
    coarse folder every sample has.

    Raises:
        SamSrError: no source, a bad ``scale_gap_xK``, a folder some sample lacks (naming one).
    """
    if not sources:
        raise SamSrError("no coarse source given")
    for src in sources:
        if src == GT_SOURCE or scale_gap_factor(src) is not None or scale_gap_factor(src, BLOCKY) is not None:
            continue
        missing = next((s.id for s in samples if src not in s.coarse), None)
        if missing is not None:
            raise SamSrError(f"unknown coarse source {src!r}: sample {missing} has no coarse mask from it "
                             f"(sources: coarse folders of the dataset, {GT_SOURCE}, {SCALE_GAP}K, {BLOCKY}K)")


def coarse_for(sample: Sample, source: str, gt: np.ndarray) -> np.ndarray:
    """Coarse mask float32 (H, W) in [0, 1] of ``sample`` from ``source`` (a real folder,
    ``scale_gap_xK``, ``blocky_xK`` or ``gt``)."""
    k = scale_gap_factor(source)
    if k is not None:
        return scale_gap(gt, k).astype(np.float32)
    k = scale_gap_factor(source, BLOCKY)
    if k is not None:
        return blocky(gt, k).astype(np.float32)
    if source == GT_SOURCE:
        return np.asarray(gt, np.float32)
    if source not in sample.coarse:
        raise SamSrError(f"sample {sample.id} has no coarse mask from {source!r}")
    return read_mask(sample.coarse[source])


#: What refiners are given as the coarse mask (the coarse mask is always scored thresholded at 0.5):
#: ``binary``, the coarse mask thresholded at 0.5 (the default, as CascadePSP and CRM evaluate
#: segmenters' label outputs); ``soft``, the source's map as it is stored (a saliency network's
#: probability map 0..255 read as [0, 1]; synthetic sources are binary either way).
COARSE_INPUTS = ("binary", "soft")


def _coarse_pairs(samples: list[Sample], sources: list[str], desc: str, coarse_input: str = "binary"):
    """Each sample's image once and, per source, the coarse mask the refiners get, its binary form
    (scored as the coarse mask) and the ground truth: yields (uint8 (H, W, 3), source, refiners' input
    (bool (H, W), or float32 (H, W) in [0, 1] with ``coarse_input="soft"``), bool (H, W), bool (H, W)),
    with a tqdm bar named ``desc``.

    Raises:
        SamSrError: a coarse mask whose size differs from its ground truth's, an unknown ``coarse_input``.
    """
    if coarse_input not in COARSE_INPUTS:
        raise SamSrError(f"coarse input must be one of {', '.join(COARSE_INPUTS)}, got {coarse_input!r}")
    for sample in tqdm(samples, desc=desc, unit="img"):
        image = read_image(sample.image)
        gt = read_mask(sample.mask) >= 0.5
        for src in sources:
            coarse = coarse_for(sample, src, gt)
            if coarse.shape != gt.shape:
                raise SamSrError(f"coarse mask of {sample.id} ({src}) differs in size from its ground truth")
            binary = coarse >= 0.5
            yield image, src, (coarse if coarse_input == "soft" else binary), binary, gt


def compare(refiners: dict[str, Any], samples: list[Sample], sources: list[str],
            coarse_input: str = "binary") -> dict[str, Any]:
    """Score several refiners on the same photos and coarse masks in one pass (each photo is read once).

    Args:
        refiners: ``{name: refiner}``; a refiner is anything with ``refine(image uint8 (H, W, 3),
            coarse bool (H, W), or float32 (H, W) in [0, 1] with ``coarse_input="soft"``) -> (H, W)``
            (nonzero = foreground), e.g. :class:`sam_sr.Refiner`.
        samples, sources, coarse_input: as :func:`evaluate`.

    Returns:
        ``{source: {"coarse": summary, name: summary, ...}}`` (:meth:`BinaryScores.summary`, in
        percent); each refiner's summary also has ``share_losing_1pt`` (percentage of photos whose IoU
        fell by more than 1 point) and ``ious`` (per-photo IoU, in sample order).
    """
    check_sources(sources, samples)
    names = ["coarse", *refiners]
    scores = {s: {n: BinaryScores() for n in names} for s in sources}
    for image, src, given, cbin, gt in _coarse_pairs(samples, sources, "compare", coarse_input):
        scores[src]["coarse"].add(cbin, gt)
        for name, refiner in refiners.items():
            scores[src][name].add(np.asarray(refiner.refine(image, given)) > 0, gt)
    out: dict[str, Any] = {}
    for s, d in scores.items():
        out[s] = {n: d[n].summary() for n in names}
        for n in refiners:
            drop = np.array(d["coarse"].ious) - np.array(d[n].ious)
            out[s][n]["share_losing_1pt"] = 100 * float((drop > 0.01).mean()) if len(drop) else float("nan")
            out[s][n]["ious"] = [round(100 * v, 3) for v in d[n].ious]
        out[s]["coarse"]["ious"] = [round(100 * v, 3) for v in d["coarse"].ious]
    return out


def format_comparison(results: dict[str, Any]) -> str:
    """Markdown table: one row per method, IoU mean / mBA per source (gains over the coarse masks in
    brackets), and the share of photos losing more than 1 IoU point."""
    sources = list(results)
    methods = list(results[sources[0]])
    head = "| method | " + " | ".join(f"{s} IoU / mBA" for s in sources) + " | photos losing > 1 IoU point |"
    lines = [head, "|" + "---|" * (len(sources) + 2)]
    for m in methods:
        cells = []
        for s in sources:
            r, c = results[s][m], results[s]["coarse"]
            gain = "" if m == "coarse" else f" ({r['iou_mean'] - c['iou_mean']:+.2f} / {r['mba'] - c['mba']:+.2f})"
            cells.append(f"{r['iou_mean']:.2f} / {r['mba']:.2f}{gain}")
        lose = "-" if m == "coarse" else " / ".join(f"{results[s][m]['share_losing_1pt']:.1f}%" for s in sources)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {lose} |")
    lines += ["", "Contour offset, px (mean signed distance of the mask's contour from the truth's; + outward):", "",
              "| method | " + " | ".join(sources) + " |", "|" + "---|" * (len(sources) + 1)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{results[s][m].get('contour_offset_px', float('nan')):+.2f}"
                                             for s in sources) + " |")
    return "\n".join(lines) + "\n"


def evaluate(refiner, samples: list[Sample], sources: list[str], coarse_input: str = "binary") -> dict[str, Any]:
    """Score coarse and refined masks per source.

    Args:
        refiner: a :class:`sam_sr.Refiner`, or ``None`` to score the coarse masks only.
        samples: evaluation samples (images with ground truth and coarse masks).
        sources: coarse sources (see module docstring).
        coarse_input: what the refiner is given (:data:`COARSE_INPUTS`): the coarse mask thresholded
            at 0.5 (``binary``), or the source's map as stored (``soft``). The coarse mask is scored
            thresholded at 0.5 either way.

    Returns:
        ``{source: {"coarse": summary, "refined": summary}}`` with summaries from
        :meth:`BinaryScores.summary` (percentages); the refined summary also has
        ``share_losing_1pt``: the percentage of images whose IoU fell by more than 1 point.
    """
    check_sources(sources, samples)
    scores = {s: {"coarse": BinaryScores(), "refined": BinaryScores()} for s in sources}
    for image, src, given, cbin, gt in _coarse_pairs(samples, sources, "evaluate", coarse_input):
        scores[src]["coarse"].add(cbin, gt)
        if refiner is not None:
            scores[src]["refined"].add(refiner.refine(image, given) > 0, gt)
    out = {s: {k: v.summary() for k, v in d.items() if k == "coarse" or refiner is not None}
           for s, d in scores.items()}
    if refiner is not None:
        for s, d in scores.items():
            drop = np.array(d["coarse"].ious) - np.array(d["refined"].ious)
            out[s]["refined"]["share_losing_1pt"] = 100 * float((drop > 0.01).mean()) if len(drop) else float("nan")
    return out


def format_tables(results: dict[str, Any]) -> str:
    """Markdown tables, one per coarse source, rows coarse/refined, as in the CRM/SAM-SR papers."""
    lines = []
    for src, rows in results.items():
        lines += [f"\n**coarse source: {src}** (n = {rows['coarse']['n']})", "",
                  "| masks | IoU mean | IoU cumulative | mBA |", "|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['iou_mean']:.2f} | {r['iou_cumulative']:.2f} | {r['mba']:.2f} |")
        if "refined" in rows:
            d = {k: rows["refined"][k] - rows["coarse"][k] for k in ("iou_mean", "iou_cumulative", "mba")}
            lines.append(f"| gain | {d['iou_mean']:+.2f} | {d['iou_cumulative']:+.2f} | {d['mba']:+.2f} |")
            if "share_losing_1pt" in rows["refined"]:
                lines.append(f"\nimages losing more than 1 IoU point: {rows['refined']['share_losing_1pt']:.1f}%")
    return "\n".join(lines) + "\n"


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
