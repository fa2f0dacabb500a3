"""Benchmark: the contour band for blocky coarse masks (a staircase from nearest-neighbour upsampling),
chosen on photos that no evaluation uses.

    SAM_SR_DATA=/path/to/data python benchmarks/blocky_band.py [--ids configs/splits/sod_val.txt]
        [--factors 4,8,16] [--candidates 0.5:0,1:0,0.5:0.1,1:0.1] [--sam-cache DIR] [--variant NAME]

For each photo and factor K, the ground truth nearest-upsampled from 1/K (``blocky_xK``,
:func:`sam_sr.data.perturb.blocky`) is refined by the model with its own settings (``Refiner(...,
blocky=False)``: the row "model") and, for each candidate ``WIDTH:MARGIN``, with the band
:func:`sam_sr.inference.staircase.blocky_settings` gives the mask's detected period (half-width WIDTH
periods, that margin; a mask whose staircase is not detected keeps the model's settings, as in
inference). Prints IoU / mBA gains over the coarse mask and the share of photos losing more than 1 IoU
point, per factor, then the rule's choice, written before the first run: the candidate with the largest
smallest gain (IoU or mBA, any factor) that beats the model's own smallest gain and loses no more
photos than it at any factor. Writes ``benchmarks/results/blocky_band.json`` (or ``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def candidates(text: str) -> list[tuple[float, float]]:
    """``"0.5:0,1:0.1"`` -> [(0.5, 0.0), (1.0, 0.1)]."""
    out = []
    for part in text.split(","):
        w, _, m = part.strip().partition(":")
        out.append((float(w), float(m or 0.0)))
    return out


def choose(rows: dict[str, dict[str, list[float]]], baseline: str = "model") -> str | None:
    """The rule (module docstring): ``rows[name][factor] = [iou_gain, mba_gain, share_losing]``."""
    def smallest(name):
        return min(min(v[0], v[1]) for v in rows[name].values())
    best, best_min = None, smallest(baseline)
    for name, per in rows.items():
        if name == baseline:
            continue
        if any(per[f][2] > rows[baseline][f][2] for f in per):
            continue
        if smallest(name) > best_min:
            best, best_min = name, smallest(name)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", default=str(ROOT / "configs/splits/sod_val.txt"))
    ap.add_argument("--root", default=None, help="dataset folder (default: $SAM_SR_DATA/sod)")
    ap.add_argument("--factors", default="4,8,16")
    ap.add_argument("--candidates", default="0.5:0,1:0,0.5:0.1,1:0.1", help="WIDTH:MARGIN, comma-separated")
    ap.add_argument("--variant", default=None, help="a variant instead of the default model")
    ap.add_argument("--sam-cache", default=None)
    ap.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/blocky_band.json"))
    args = ap.parse_args(argv)

    from tqdm import tqdm

    from sam_sr import Refiner
    from sam_sr.data.datasets import read_ids
    from sam_sr.data.perturb import blocky
    from sam_sr.evaluation.metrics import boundary_accuracy, iou
    from sam_sr.imaging import read_image, read_mask
    from sam_sr.inference.staircase import blocky_settings, staircase_period

    root = Path(args.root) if args.root else Path(os.environ.get("SAM_SR_DATA", "")) / "sod"
    if not (root / "images").is_dir():
        print(f"no photos in {root / 'images'}: set SAM_SR_DATA or --root", file=sys.stderr)
        return 2
    ids = read_ids(Path(args.ids))[: args.limit or None]
    cache = None
    if args.sam_cache:
        from sam_sr.sam.cache import SamCache, model_tag
        from sam_sr.sam.loader import BUNDLED_SAM
        cache = SamCache(args.sam_cache, model_tag("vit_t", BUNDLED_SAM))
    extra = {"precision": args.precision} if args.precision else {}
    if args.variant:
        extra["variant"] = args.variant
    model = Refiner.from_checkpoint(device="cpu", sam_cache=cache, blocky=False, **extra)
    upsample_to = model.cascade.upsample_to
    refiners: dict[tuple[str, float], Refiner] = {}

    def with_band(settings):
        key = (settings["decode"], settings["margin"])
        if key not in refiners:
            refiners[key] = Refiner.from_checkpoint(device="cpu", sam_cache=cache, blocky=False, **extra, **settings)
        return refiners[key]

    factors = [int(f) for f in args.factors.split(",")]
    cands = candidates(args.candidates)
    names = ["model"] + [f"{w:g}:{m:g}" for w, m in cands]
    scores = {n: {k: [] for k in factors} for n in ["coarse"] + names}
    t0 = time.time()
    for i in tqdm(ids, desc="blocky band", unit="photo"):
        image = read_image(root / "images" / f"{i}.jpg")
        gt = read_mask(root / "masks" / f"{i}.png") >= 0.5
        for k in factors:
            coarse = blocky(gt, k).astype(bool)
            period = staircase_period(coarse)
            scores["coarse"][k].append((iou(coarse, gt), boundary_accuracy(coarse, gt)))
            for name, cand in zip(names, [None] + cands):
                band = blocky_settings(period, gt.shape, upsample_to, *cand) if cand else {}
                r = with_band(band) if band else model
                out = r.refine(image, coarse) > 0
                scores[name][k].append((iou(out, gt), boundary_accuracy(out, gt)))
    rows: dict[str, dict[str, list[float]]] = {}
    c = {k: np.array(scores["coarse"][k]) * 100 for k in factors}
    for name in names:
        rows[name] = {}
        for k in factors:
            a = np.array(scores[name][k]) * 100
            gain = a.mean(0) - c[k].mean(0)
            rows[name][str(k)] = [float(gain[0]), float(gain[1]), float((a[:, 0] - c[k][:, 0] < -1).mean() * 100)]
    chosen = choose(rows)
    print(f"{len(ids)} photos of {args.ids}, {time.time() - t0:.0f} s; IoU / mBA gain over the blocky mask, "
          f"photos losing > 1 IoU point")
    print("| band (width:margin) | " + " | ".join(f"blocky x{k}" for k in factors) + " |")
    print("|---" * (len(factors) + 1) + "|")
    for name in names:
        cells = [f"{v[0]:+.2f} / {v[1]:+.2f}, {v[2]:.1f}%" for v in rows[name].values()]
        print(f"| {name}{' (chosen)' if name == chosen else ''} | " + " | ".join(cells) + " |")
    print(f"chosen: {chosen or 'none (the model settings stay)'}")
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "ids": Path(args.ids).name, "photos": len(ids),
           "variant": args.variant or "default", "precision": model.info.get("precision"),
           "upsample_to": upsample_to, "rows": rows, "chosen": chosen}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
