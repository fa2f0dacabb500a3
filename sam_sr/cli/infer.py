"""``sam-sr infer``: refine one image, a folder, one label map or a folder of label maps."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import SamSrError
from . import argtypes
from .common import add_model_args, refiner_from_args, run_jobs, write_run_report

HELP = "refine coarse masks: one image, a folder, a label map or a folder of label maps"
DESCRIPTION = """Refine coarse masks with sam-sr: one image (--image --mask --out), a folder (--images
--masks --out DIR), a label map (--image --labels FILE --num-classes N --out), a folder of label maps
(--images --labels DIR --num-classes N --out DIR) or the bundled example (--example). Masks of any size
(same aspect ratio) and bit depth are accepted and resized to the image; binary masks (0/255, or 0/1)
stay binary, soft masks are refined as they are (--mask-threshold binarises them first). Outputs are
binary masks (0/255) in the format their extension names (.png, .tif); --soft also writes
<out>_soft.<ext> (the probability x 255). No output may be an input, even with --force. Folder runs
match files by stem, check every output path before they start, report each bad item and go on
(exit status 1 if any failed), show a progress bar, and can write --summary S.json and --report
R.html; under `accelerate launch` (or torchrun) they are shared out over the processes."""

EXAMPLE_IMAGE = "coffee.jpg"
EXAMPLE_MASK = "coffee_coarse.png"


def arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("paths", nargs="*", metavar="IMAGE MASK",
                    help="one photo and its coarse mask (the same as --image IMAGE --mask MASK)")
    inp = ap.add_argument_group("input")
    inp.add_argument("--image", help="input photo")
    inp.add_argument("--mask", help="coarse mask for --image")
    inp.add_argument("--images", help="folder of photos (folder modes)")
    inp.add_argument("--masks", help="folder of coarse masks, matched to photos by file stem")
    inp.add_argument("--example", action="store_true", help="refine the example bundled with sam-sr")
    inp.add_argument("--labels", help="label maps: an index or palette PNG for --image, or a folder of them "
                                      "(matched by stem) for --images")
    inp.add_argument("--num-classes", type=argtypes.positive_int, help="label maps: number of classes")
    inp.add_argument("--ignore-index", type=argtypes.count, default=None, help="label maps: label left untouched")
    inp.add_argument("--label-merge", default=None, choices=argtypes.LABEL_MERGE_NAMES,
                     help="label maps: how the refined classes are merged: thin-aware (default: boundaries "
                          "between thick classes move freely, thin and far changes need a clear lead), uniform "
                          "(a clear lead everywhere) or argmax (most gain on blocky maps; thin classes can be lost)")
    inp.add_argument("--fusion", default="refine",
                     help="one label map: refine (per-class refiner), majority (SAM masks, majority vote) "
                          "or a SAM prompt kind: single_point, points, box, points_box, points_box_mask")
    inp.add_argument("--gt", help="folder modes: ground-truth masks or label maps (by stem), for IoU/mBA in the "
                                  "summary and the report")
    inp.add_argument("--sam-batch", type=argtypes.positive_int, default=None,
                     help="folder runs of a SAM-guided model: photos per call of SAM's image encoder, read "
                          "ahead (default 1; on a 2-core CPU a batch did not pay, on a GPU it is untested: "
                          "docs/BENCHMARKS.md)")
    out = ap.add_argument_group("output")
    out.add_argument("--out", help="output file (.png or .tif), or output folder (folder modes); required")
    out.add_argument("--overlay", help="one image: also write an overlay (coarse red, refined green)")
    out.add_argument("--soft", action="store_true", help="also write the soft refined map (<out>_soft)")
    out.add_argument("--force", action="store_true", help="overwrite existing outputs (never an input)")
    out.add_argument("--ext", default=".png", choices=(".png", ".tif", ".tiff"),
                     help="folder modes: output format (default .png)")
    out.add_argument("--summary", help="folder modes: write the run's summary (per-photo status, change, "
                                       "IoU/mBA) to this JSON file")
    out.add_argument("--report", help="folder modes: write an HTML report (overlays sorted by change)")
    add_model_args(ap)


def _positional(args) -> None:
    """``sam-sr infer IMAGE MASK --out OUT``: the two paths become --image and --mask; any other
    count of positional paths, or --out missing, is one clear error naming the flags."""
    if args.paths:
        if len(args.paths) != 2:
            raise SamSrError(f"give one photo and its coarse mask (IMAGE MASK, or --image IMAGE --mask MASK); "
                             f"got {len(args.paths)} path(s): {' '.join(args.paths)}")
        if args.image or args.mask or args.images:
            raise SamSrError("give the photo and mask either as IMAGE MASK or as --image/--mask, not both")
        args.image, args.mask = args.paths
    if not args.out:
        what = "the output folder" if args.images else "the refined mask's path (.png or .tif)"
        raise SamSrError(f"give --out: {what}, e.g. sam-sr infer IMAGE MASK --out refined.png")


def _soft_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_soft{out.suffix}")


def refine_file(refiner, image_path, mask_path, out_path: Path, soft: bool, overlay_path: Path | None,
                force: bool, mask_threshold: float | None = None) -> None:
    """Refine one photo: check every output path first (none may be an input, even with
    ``force``; they must differ; lossless extensions), then refine and write atomically."""
    from ..imaging.outputs import check_outputs
    from ..imaging.read import check_pair, read_image, read_mask
    from ..imaging.write import write_mask
    from ..reporting.visualize import overlay

    outs = check_outputs({"--image": image_path, "--mask": mask_path},
                         {"--out": out_path, "--soft": _soft_path(out_path) if soft else None,
                          "--overlay": overlay_path}, force, images=("--out", "--soft", "--overlay"))
    image = read_image(image_path)
    mask = read_mask(mask_path)
    check_pair(image_path, image.shape[:2], mask.shape)
    result = refiner.predict(image, mask, mask_threshold)
    binary, prob = result.mask, result.soft
    write_mask(outs["--out"], binary)
    if soft:
        write_mask(outs["--soft"], (np.clip(prob, 0, 1) * 255 + 0.5).astype(np.uint8))
    if overlay_path:
        write_mask(outs["--overlay"],
                   overlay(image, result.coarse >= 0.5, binary))


def _refuse(args, names: tuple[str, ...], mode: str) -> None:
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) not in (None, False)]
    if given:
        raise SamSrError(f"{', '.join(given)} cannot be used {mode}")


def run(args) -> int:
    _positional(args)
    folder = args.images is not None
    if args.example:
        if args.image or args.mask or folder or args.masks or args.labels:
            raise SamSrError("--example takes no --image/--mask/--images/--masks/--labels")
        assets = Path(__file__).resolve().parent.parent / "assets"
        args.image, args.mask = str(assets / EXAMPLE_IMAGE), str(assets / EXAMPLE_MASK)
    if folder:
        if args.image or args.mask:
            raise SamSrError("--images (a folder run) takes no --image/--mask")
        _refuse(args, ("overlay",), "in a folder run")
        if args.labels:
            _refuse(args, ("sam_batch",), "with --labels (a photo's classes share one SAM encoding already)")
            return _label_folder(args)
        if not args.masks:
            raise SamSrError("a folder run needs --masks DIR (or --labels DIR with --num-classes)")
        if args.regions == "keep":
            _refuse(args, ("sam_batch",), "with --regions keep (SAM is not run)")
        _refuse(args, ("num_classes", "ignore_index", "label_merge"), "with --masks")
        if args.fusion != "refine":
            raise SamSrError("--fusion is for label maps (--labels); coarse masks are refined by the model")
        return _folder(args)
    _refuse(args, ("gt", "summary", "report", "sam_batch"), "with one --image (they are for folder runs: --images)")
    if args.ext != ".png":
        raise SamSrError("--ext is for folder runs; name --out .png or .tif")
    if args.masks:
        raise SamSrError("--masks is a folder for --images; give --mask for one --image")
    if args.labels:
        return _labels(args)
    if args.fusion != "refine":
        raise SamSrError("--fusion is for label maps (--labels); a coarse mask is refined by the model")
    if not (args.image and args.mask):
        raise SamSrError("give --image and --mask, --images and --masks, or --example")
    _refuse(args, ("num_classes", "ignore_index", "label_merge"), "without --labels")
    refiner = refiner_from_args(args)
    refine_file(refiner, args.image, args.mask, Path(args.out), args.soft,
                Path(args.overlay) if args.overlay else None, args.force, args.mask_threshold)
    print(f"wrote {args.out}" + (f" and {args.overlay}" if args.overlay else ""))
    return 0


def _labels(args) -> int:
    """One label map: read it, refine or fuse it, write it with the input's palette."""
    from ..imaging.outputs import check_outputs
    from ..imaging.read import read_image, read_label_map, size_text
    from ..imaging.write import write_mask
    from ..inference.labels import check_label_values, refine_semantic

    if not args.image or args.mask:
        raise SamSrError("--labels needs --image (and no --mask)")
    if not args.num_classes:
        raise SamSrError("--labels needs --num-classes N")
    if Path(args.labels).is_dir():
        raise SamSrError(f"--labels {args.labels} is a folder: use --images DIR for a folder of label maps")
    _refuse(args, ("soft", "mask_threshold"), "with --labels")
    out = check_outputs({"--image": args.image, "--labels": args.labels}, {"--out": args.out}, args.force,
                        images=("--out",))["--out"]
    image = read_image(args.image)
    labels, palette = read_label_map(args.labels)
    if labels.shape != image.shape[:2]:
        raise SamSrError(f"label map ({size_text(labels.shape)}) and image ({size_text(image.shape[:2])}) "
                         f"differ in size")
    check_label_values(labels, args.num_classes, args.ignore_index, f"label map {args.labels}")
    if args.fusion != "refine" and args.label_merge:
        raise SamSrError("--label-merge is for --fusion refine (the per-class refiner)")
    if args.fusion == "refine":
        from ..inference.labels import label_merge
        result = refine_semantic(refiner_from_args(args), image, labels, args.num_classes, args.ignore_index,
                                 **label_merge(args.label_merge))
    else:
        from ..sam import load_sam, mask_generator, predictor
        from ..sam.label_fusion import PROMPTS, majority_vote, prompt_fusion
        if args.fusion not in ("majority",) + PROMPTS:
            raise SamSrError(f"unknown --fusion {args.fusion!r}; choose from refine, majority, {', '.join(PROMPTS)}")
        if not args.sam_checkpoint:
            raise SamSrError("--fusion with SAM needs --sam-checkpoint")
        sam = load_sam(args.sam_type or "vit_t", args.sam_checkpoint, args.device)
        if args.fusion == "majority":
            result = majority_vote(labels, mask_generator(sam).generate(image), args.ignore_index)
        else:
            result = prompt_fusion(predictor(sam), image, labels, args.fusion, args.ignore_index)
    write_mask(out, result.astype(labels.dtype), palette=palette)
    print(f"wrote {out}")
    return 0


def _folder_outputs(args) -> None:
    """Check --summary and --report before a folder run starts."""
    from ..imaging.outputs import check_outputs
    from ..reporting.report import check_report_path
    if args.summary and Path(args.summary).suffix.lower() != ".json":
        raise SamSrError(f"--summary {args.summary}: name it .json")
    check_outputs({}, {"--summary": args.summary, "--report": args.report}, args.force)
    if args.report:
        check_report_path(args.report, args.force)


def _finish(args, summary, report) -> int:
    """On the main process: the summary line, the --summary file and the report; the exit status."""
    from ..batch.folders import summary_line
    if summary is None:                 # another process of a data-parallel run: the main one reports
        return 0
    print(summary_line(summary, args.out))
    if args.summary:
        from ..data.coco import write_json
        write_json(args.summary, summary, indent=1)
        print(f"wrote {args.summary}")
    write_run_report(args, summary, lambda: report(summary))
    return 1 if summary["failed"] else 0


def _folder(args) -> int:
    """A folder of photos and coarse masks (:mod:`sam_sr.batch.folders`), sharded over the processes."""
    from ..batch.folders import plan_mask_folder, run_mask_jobs
    from ..reporting.report import folder_report
    jobs = plan_mask_folder(args.images, args.masks, args.out, args.ext, args.soft, args.gt)
    _folder_outputs(args)
    summary = run_jobs(args, jobs, lambda refiner, js, desc: run_mask_jobs(
        refiner, js, args.force, desc=desc, mask_threshold=args.mask_threshold,
        sam_batch=args.sam_batch or 1), args.out)
    return _finish(args, summary, lambda s: folder_report(s, args.report, force=args.force))


def _label_folder(args) -> int:
    """A folder of photos and label maps, refined class by class (:mod:`sam_sr.batch.folders`)."""
    from ..batch.folders import plan_label_folder, run_label_jobs
    from ..reporting.report import folder_report
    if not args.num_classes:
        raise SamSrError("--labels DIR needs --num-classes N")
    if args.masks:
        raise SamSrError("give --masks DIR or --labels DIR, not both")
    if args.fusion != "refine":
        raise SamSrError("--fusion works on one --image; a folder of label maps is refined class by class")
    _refuse(args, ("soft", "mask_threshold"), "with --labels")
    if not Path(args.labels).is_dir():
        raise SamSrError(f"--labels {args.labels} must be a folder with --images (or use --image FILE)")
    jobs = plan_label_folder(args.images, args.labels, args.out, args.ext, args.gt)
    _folder_outputs(args)
    summary = run_jobs(args, jobs, lambda refiner, js, desc: run_label_jobs(
        refiner, js, args.num_classes, args.ignore_index, args.force, desc=desc, merge=args.label_merge), args.out)
    return _finish(args, summary, lambda s: folder_report(s, args.report, force=args.force))
