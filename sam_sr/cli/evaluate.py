"""``sam-sr eval`` (IoU and mBA per coarse source) and ``sam-sr eval-semantic`` (label maps)."""
from __future__ import annotations

import argparse

from . import argtypes
from .common import add_model_args, data_or, plain_args, refiner_from_args

HELP = "evaluate a refiner: coarse vs refined IoU (mean, cumulative) and mBA per coarse source"
DESCRIPTION = """Evaluate a refiner (IoU mean and cumulative, mBA) against ground truth, for coarse masks
from one or more segmenters (folders under <root>/coarse) and the synthetic protocols (scale_gap_xK:
bilinear upsampling; blocky_xK: nearest-neighbour, a staircase; gt: the truth itself). Coarse masks are thresholded at 0.5. Default dataset: $SAM_SR_DATA/sod with the 80
evaluation photos of configs/splits/sod_eval.txt."""

SEMANTIC_HELP = "evaluate per-class refinement and SAM fusion of label maps (CamVid)"
SEMANTIC_DESCRIPTION = """Refine simulated low-resolution label maps with refine_semantic and the SAM
fusion recipes (sam_sr.sam.label_fusion); PA, mAcc, mIoU, Dice, F1, mBA. Default dataset:
$SAM_SR_DATA/camvid. SAM methods need --sam-checkpoint."""


def arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--root", default=None, help="dataset folder (default: $SAM_SR_DATA/sod)")
    ap.add_argument("--layout", default="generic", help="dataset layout (generic, big, ecssd, ...)")
    ap.add_argument("--ids", default="configs/splits/sod_eval.txt",
                    help="file of evaluation ids ('' for all)")
    ap.add_argument("--sources", default="picanet,dss,amulet,scale_gap_x8",
                    help="coarse sources: folders under <root>/coarse and/or scale_gap_xK, blocky_xK, gt")
    ap.add_argument("--limit", type=argtypes.count, default=0, help="evaluate only the first N images (0 = all)")
    ap.add_argument("--coarse-only", action="store_true", help="score the coarse masks only")
    ap.add_argument("--coarse-input", choices=argtypes.COARSE_INPUT_NAMES, default="binary",
                    help="what the refiner is given: the coarse mask thresholded at 0.5 (default), or the "
                         "source's map as stored (soft); the coarse mask is scored thresholded at 0.5 either way")
    ap.add_argument("--json", default=None, help="write results to this JSON file (checked before evaluating)")
    add_model_args(ap)


def _check_json(path: str | None) -> None:
    """``--json``'s folder must be writable before hours of evaluation (an existing file is replaced)."""
    if path:
        from ..imaging.outputs import check_output_path
        check_output_path(path, force=True)


def run(args) -> int:
    from ..data import load_samples
    from ..evaluation.evaluate import evaluate, format_tables, write_json
    _check_json(args.json)
    root = data_or(args.root, "sod", "--root")
    samples = load_samples({"layout": args.layout, "root": root, "ids_file": args.ids or None})
    if args.limit:
        samples = samples[: args.limit]
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    refiner = None if args.coarse_only else refiner_from_args(args)
    results = evaluate(refiner, samples, sources, args.coarse_input)
    print(format_tables(results))
    if args.json:
        from ..paths import portable
        meta = {"root": portable(root), "ids": args.ids, "n_images": len(samples), "coarse_input": args.coarse_input,
                "checkpoint": None if refiner is None else portable(refiner.info.get("checkpoint")),
                **({} if refiner is None else refiner.cascade.settings())}
        write_json(args.json, {"meta": meta, "results": results})
    return 0


def semantic_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--root", default=None, help="CamVid folder (default: $SAM_SR_DATA/camvid)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=argtypes.count, default=0, help="first N images (0 = all)")
    ap.add_argument("--num-classes", type=argtypes.positive_int, default=11)
    ap.add_argument("--ignore-index", type=argtypes.count, default=11)
    ap.add_argument("--factor", type=argtypes.positive_int, default=8, help="simulated segmenter's downsampling factor")
    ap.add_argument("--noise", type=argtypes.float_in(0, 1), default=0.1, help="low-resolution label noise probability")
    ap.add_argument("--methods", default="baseline,refine,majority,prompt:single_point,prompt:points,"
                                         "prompt:box,prompt:points_box,prompt:points_box_mask,"
                                         "det:coarse,det:oracle")
    ap.add_argument("--label-merge", default=None, choices=argtypes.LABEL_MERGE_NAMES,
                    help="how 'refine' merges its refined classes (as sam-sr infer --labels --label-merge; "
                         "default thin-aware)")
    ap.add_argument("--json", default=None, help="write results to this JSON file (checked before evaluating)")
    add_model_args(ap)


def semantic_run(args) -> int:
    from ..errors import SamSrError
    from ..evaluation.evaluate import write_json
    from ..evaluation.semantic import evaluate_semantic, format_semantic_table, list_pairs
    _check_json(args.json)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    pairs = list_pairs(data_or(args.root, "camvid", "--root"), args.split)
    if args.limit:
        pairs = pairs[: args.limit]
    refiner = refiner_from_args(args) if "refine" in methods else None
    sam = None
    if any(m not in ("baseline", "refine") for m in methods):
        if not args.sam_checkpoint:
            raise SamSrError("the SAM fusion methods need --sam-checkpoint (e.g. MobileSAM's mobile_sam.pt)")
        from ..sam import load_sam
        sam = load_sam(args.sam_type or "vit_t", args.sam_checkpoint, args.device)
    results = evaluate_semantic(pairs, methods, args.num_classes, args.ignore_index, args.factor,
                                args.noise, refiner, sam, args.points_per_side, merge=args.label_merge)
    print(format_semantic_table(results))
    if args.json:
        write_json(args.json, {"args": plain_args(args), "n_images": len(pairs), "results": results})
    return 0
