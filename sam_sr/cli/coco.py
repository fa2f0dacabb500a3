"""``sam-sr coco``: refine the instance masks of a COCO results file, and score them."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SamSrError
from . import argtypes
from .common import add_model_args, run_jobs, write_run_report

HELP = "refine the instance masks of a COCO results file (RLE or polygons); --eval scores AP and mBA"
DESCRIPTION = """Refine every instance of a COCO results file (a JSON list of {image_id, category_id,
score, segmentation} as Detectron2, MMDetection or YOLO write it; RLE or polygons) at its photo's full
resolution, each in a crop of its box plus context (--pad times the box's longer side, at least
--min-context px, on each side). Photos come from --annotations (a COCO annotation file: image id ->
file_name, looked up in --images or next to the file) or --images alone (files named by image id).
--out gets the same list with refined compressed RLE; ids, categories, scores and every other key are
kept. Bad instances are reported and kept unchanged (exit status 1). --eval (needs --annotations with
ground-truth instances) prints mask AP / AP50 / AP75 (pycocotools' COCOeval) and mean mBA before and
after. Under `accelerate launch` (or torchrun) the photos are shared out over the processes and one
merged --out is written."""


def arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--results", required=True, help="COCO results JSON to refine (RLE or polygons)")
    ap.add_argument("--images", help="image folder (with --annotations: where file_name is looked up; "
                                     "alone: files named by image id)")
    ap.add_argument("--annotations", help="COCO annotation file: image ids -> file names (and ground truth "
                                          "for --eval)")
    ap.add_argument("--out", required=True, help="refined results JSON")
    ap.add_argument("--eval", action="store_true", help="score before/after against --annotations")
    ap.add_argument("--min-iou", type=argtypes.float_in(0, 1), default=0.5,
                    help="mBA pairs: least IoU of a detection with its ground-truth instance (default 0.5)")
    ap.add_argument("--eval-json", help="also write the --eval scores to this JSON file")
    ap.add_argument("--report", help="also write an HTML report (overlays sorted by change)")
    ap.add_argument("--summary", help="write the run's summary (per-instance status and change) to this JSON file")
    ap.add_argument("--pad", type=argtypes.non_negative_float, default=0.5,
                    help="context on each side of an instance's box, as a fraction of its longer side")
    ap.add_argument("--min-context", type=argtypes.count, default=32, help="least context on each side (px)")
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs (never an input)")
    add_model_args(ap)


def _check(args) -> None:
    """Everything about the options and output paths, before anything is read or refined."""
    from ..imaging.outputs import check_outputs
    from ..reporting.report import check_report_path
    if not (args.images or args.annotations):
        raise SamSrError("give --images DIR, --annotations A.json, or both (to find the photos)")
    if args.eval and not args.annotations:
        raise SamSrError("--eval needs --annotations with ground-truth instances")
    if args.eval_json and not args.eval:
        raise SamSrError("--eval-json needs --eval")
    if args.mask_threshold is not None:
        raise SamSrError("--mask-threshold does not apply to COCO runs: their masks (RLE or polygons) are "
                         "binary")
    for option in ("out", "summary", "eval_json"):
        path = getattr(args, option)
        if path and Path(path).suffix.lower() != ".json":
            raise SamSrError(f"--{option.replace('_', '-')} {path}: name it .json")
    check_outputs({"--results": args.results, "--annotations": args.annotations},
                  {"--out": args.out, "--summary": args.summary, "--eval-json": args.eval_json,
                   "--report": args.report}, args.force)
    if args.report:
        check_report_path(args.report, args.force)


def run(args) -> int:
    from ..batch.coco import (
        apply_refinement,
        failed_instances,
        merge_coco_summaries,
        plan_coco,
        run_coco_jobs,
        summary_line,
    )
    from ..data.coco import image_table, load_results, write_json
    from ..evaluation.coco import evaluate_coco, format_evaluation, ground_truth
    _check(args)
    results = load_results(args.results)
    table = image_table(args.annotations, args.images)
    if args.eval:
        ground_truth(args.annotations)          # a file without ground truth fails before the run
    jobs = plan_coco(results, table)
    summary = run_jobs(args, jobs, lambda refiner, js, desc: run_coco_jobs(
        refiner, results, js, args.pad, args.min_context, desc=desc), Path(args.out).parent,
        merge=merge_coco_summaries)
    if summary is None:                 # another process of a data-parallel run: the main one writes
        return 0
    refined = apply_refinement(results, summary)
    write_json(args.out, refined)
    print(f"{summary_line(summary)}; wrote {args.out}")
    if args.summary:
        write_json(args.summary, {k: v for k, v in summary.items() if k != "segmentations"}, indent=1)
        print(f"wrote {args.summary}")
    evaluation = None
    if args.eval:
        evaluation = evaluate_coco(args.annotations, results, refined, args.min_iou,
                                        exclude=failed_instances(summary))
        print(format_evaluation(evaluation), end="")
        if args.eval_json:
            write_json(args.eval_json, evaluation, indent=1)
            print(f"wrote {args.eval_json}")
    from ..reporting.report import coco_report
    write_run_report(args, summary, lambda: coco_report(results, refined, table, args.report,
                                                        gt=args.annotations if args.eval else None, summary=summary,
                                                        evaluation=evaluation, force=args.force), "instances")
    return 1 if summary["failed"] else 0
