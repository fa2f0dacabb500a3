"""Refine the instance masks of a COCO results file, and score them.

``python scripts/refine_coco.py --results R.json (--images DIR | --annotations A.json | both) --out OUT.json
[--eval] [--report report.html] [--checkpoint CKPT] [--pad 0.5] [--min-context 32] [--force]``

Each instance is refined in a crop of its photo at full resolution (its box plus ``--pad`` times the
box's longer side, at least ``--min-context`` px, on each side); ``OUT.json`` is the results list with
refined compressed RLE, every other key kept. Bad instances are reported and kept unchanged (exit 1).
``--eval`` (needs ``--annotations`` with ground-truth masks) prints mask AP / AP50 / AP75 and mean mBA
before and after (:func:`sam_sr.coco.evaluate_coco`) and writes them to ``OUT.eval.json``.
(The ``sam-sr`` command line gets this as a subcommand; this script calls the same library.)
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sam_sr import Refiner, SamSrError  # noqa: E402
from sam_sr import coco  # noqa: E402
from sam_sr.io import check_outputs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="COCO results JSON (RLE or polygons)")
    ap.add_argument("--images", help="image folder (with --annotations: where file_name is looked up)")
    ap.add_argument("--annotations", help="COCO annotation file: image ids -> file names (and ground truth)")
    ap.add_argument("--out", required=True, help="refined results JSON")
    ap.add_argument("--eval", action="store_true", help="score before/after against --annotations")
    ap.add_argument("--min-iou", type=float, default=0.5, help="mBA pairs: least IoU with the ground truth")
    ap.add_argument("--report", help="also write an HTML report (overlays sorted by change)")
    ap.add_argument("--pad", type=float, default=0.5)
    ap.add_argument("--min-context", type=int, default=32)
    ap.add_argument("--checkpoint", help="sam-sr checkpoint (default: the shipped model)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs (never an input)")
    args = ap.parse_args()
    try:
        if args.eval and not args.annotations:
            raise SamSrError("--eval needs --annotations with ground-truth instances")
        ev_path = Path(args.out).with_suffix(".eval.json") if args.eval else None
        check_outputs({"--results": args.results, "--annotations": args.annotations},
                      {"--out": args.out, "--report": args.report, "eval JSON": ev_path}, args.force)
        results = coco.load_results(args.results)
        table = coco.image_table(args.annotations, args.images)
        refiner = Refiner.from_checkpoint(args.checkpoint, device=args.device)
        refined, summary = coco.refine_coco(refiner, results, table, args.pad, args.min_context)
        coco.write_json(args.out, refined)
        print(coco.summary_line(summary) + f"; wrote {args.out}")
        ev = None
        if args.eval:
            ev = coco.evaluate_coco(args.annotations, results, refined, args.min_iou)
            print(coco.format_evaluation(ev))
            coco.write_json(ev_path, {k: v for k, v in ev.items() if k != "per_image"}, indent=2)
        if args.report:
            from sam_sr.report import coco_report
            coco_report(results, refined, table, args.report, gt=args.annotations, summary=summary,
                        evaluation=ev, force=args.force)
            print(f"wrote {args.report}")
    except SamSrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
