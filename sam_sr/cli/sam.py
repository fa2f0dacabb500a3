"""``sam-sr precompute-sam`` (the SAM cache) and ``sam-sr ablation`` (the SAM-SR variants compared)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SamSrError
from . import argtypes
from .common import data_or, names, sam_cache_folder

PRECOMPUTE_HELP = "cache SAM embeddings and automatic masks of a config's training (and evaluation) images"
PRECOMPUTE_DESCRIPTION = """Run SAM once per image of a config's data.datasets (and of the evaluation
split) and store its image embedding and automatic masks in the config's sam.cache, keyed by image
content and SAM checkpoint. Training the SAM-SR variants reads only this cache. Images already cached
are skipped, so an interrupted run resumes."""

ABLATION_HELP = "score every SAM-SR variant and the CRM baseline on the same photos (table, JSON, figure)"
ABLATION_DESCRIPTION = """The SAM-SR ablation: coarse masks, then every variant's checkpoint
(<runs>/<variant>/final.pt, trained with configs/experiments/sam_sr/<variant>.yaml) on the same photos and
coarse sources: IoU mean, mBA and the mean gain over the coarse masks. SAM outputs come from the cache
(sam-sr precompute-sam). Default dataset: $SAM_SR_DATA/sod."""


def precompute_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", required=True, help="training config; its data.datasets and sam section")
    ap.add_argument("--eval-root", default=None,
                    help="evaluation dataset, also cached (default: $SAM_SR_DATA/sod)")
    ap.add_argument("--eval-ids", default="configs/splits/sod_eval.txt",
                    help="evaluation ids file ('' to skip the evaluation images)")
    ap.add_argument("--no-masks", action="store_true", help="embeddings only (enough for v2.2, v3.x)")
    ap.add_argument("--threads", type=argtypes.count, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")


def precompute_run(args) -> int:
    from ..config import load_config
    from ..data import concat_samples, load_samples
    from ..sam import load_sam
    from ..sam.precompute import cache_for, precompute
    cfg = load_config(args.config, args.overrides)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    s = cfg["sam"]
    if not s.get("checkpoint"):
        raise SamSrError("the config's sam.checkpoint is not set")
    samples = concat_samples(cfg["data"]["datasets"])
    if args.eval_ids:
        root = data_or(args.eval_root, "sod", "--eval-root")
        samples += load_samples({"layout": "generic", "root": root, "ids_file": args.eval_ids})
    cache = cache_for(s["cache"], s["type"], s["checkpoint"])
    sam = load_sam(s["type"], s["checkpoint"])
    out = precompute(sam, [x.image for x in samples], cache, s["points_per_side"], masks=not args.no_masks)
    print(f"{out['computed']} images computed, {out['skipped']} already cached, "
          f"{out['wall_s']:.0f} s; cache {cache.dir}")
    return 0


def ablation_arguments(ap: argparse.ArgumentParser) -> None:
    from ..variants import available_variants
    ap.add_argument("--runs", default="runs/sam_sr", help="folder of <variant>/final.pt checkpoints")
    ap.add_argument("--variants", default=",".join(available_variants()),
                    help="comma-separated registered variants (default: all)")
    ap.add_argument("--root", default=None, help="dataset folder (default: $SAM_SR_DATA/sod)")
    ap.add_argument("--ids", default="configs/splits/sod_eval.txt")
    ap.add_argument("--sources", default="picanet,dss,amulet")
    ap.add_argument("--limit", type=argtypes.count, default=0, help="first N images only (0 = all)")
    ap.add_argument("--sam-type", default="vit_t")
    ap.add_argument("--sam-checkpoint", required=True, help="SAM checkpoint, e.g. MobileSAM's mobile_sam.pt")
    ap.add_argument("--sam-cache", default="cache/sam", help="SAM cache (sam-sr precompute-sam)")
    ap.add_argument("--points-per-side", type=argtypes.positive_int, default=6,
                    help="grid of the cached automatic masks")
    ap.add_argument("--json", default="benchmarks/results/sam_sr_ablation.json")
    ap.add_argument("--figure", default="docs/figures/sam_sr_ablation.png",
                    help="overlays where the best SAM-SR variant beats / loses to CRM ('' = none)")


def ablation_run(args) -> int:
    from ..data import load_samples
    from ..evaluation.ablation import (
        best_variant,
        checkpoint_for,
        format_ablation,
        pick_examples,
        run_ablation,
    )
    from ..evaluation.evaluate import write_json
    from ..imaging.write import write_png
    from ..inference import Refiner
    from ..reporting.figures import ablation_figure
    from ..sam.cache import SamCache, model_tag
    from ..variants import available_variants
    variants = names(args.variants, available_variants(), "variants")
    if not Path(args.sam_checkpoint).is_file():
        raise SamSrError(f"SAM checkpoint not found: {args.sam_checkpoint}")
    root = data_or(args.root, "sod", "--root")
    cache = SamCache(sam_cache_folder(args.sam_cache), model_tag(args.sam_type, args.sam_checkpoint))
    checkpoints = {v: checkpoint_for(args.runs, v) for v in variants}
    refiners = {v: Refiner.from_checkpoint(checkpoints[v], variant=v, sam_type=args.sam_type,
                                           sam_checkpoint=args.sam_checkpoint, sam_cache=cache,
                                           sam_points_per_side=args.points_per_side)
                for v in variants}
    samples = load_samples({"layout": "generic", "root": root, "ids_file": args.ids or None})
    if args.limit:
        samples = samples[: args.limit]
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    out = run_ablation(refiners, samples, sources)
    print(format_ablation(out["results"]))
    if out["v1_used_sam"] is not None:
        print(f"v1 used SAM's union for {100 * out['v1_used_sam']:.1f}% of its inputs")
    best = best_variant(out["results"]) if "crm" in variants else None
    if best is not None:
        print(f"best SAM-SR variant (mean of IoU + mBA over sources): {best}")
    meta = {"runs": args.runs, "checkpoints": {v: str(p) for v, p in checkpoints.items()},
            "root": str(root), "ids": args.ids, "n_images": len(samples), "sam_type": args.sam_type,
            "points_per_side": args.points_per_side, "best": best}
    if args.json:
        write_json(args.json, {"meta": meta, **out})
    if args.figure and best is not None:
        src = sources[0]
        picks = pick_examples(out["per_image"][src], "crm", best)
        if picks:
            write_png(args.figure, ablation_figure(refiners, samples, picks, src, "crm", best))
            for i, d in picks:
                print(f"figure row {samples[i].id}: IoU {best} - crm = {d:+.2f}")
            print(f"figure: {args.figure} (columns: coarse | CRM | {best}; contours: red coarse, "
                  f"green refined, blue ground truth; source {src})")
    return 0
