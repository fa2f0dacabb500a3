"""Command-line entry points: ``sam-sr {infer,train,eval}`` and the top-level scripts.

Every bad input ends with one ``error: ...`` line on stderr and exit status 2; a folder run in which
some pairs failed exits with status 1.
"""
from __future__ import annotations

import argparse
import sys

from .errors import SamSrError


def _choices(text: str, known, what: str) -> list[str]:
    """Comma-separated names from ``text``; raises :class:`SamSrError` naming any not in ``known``."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in known]
    if unknown:
        raise SamSrError(f"unknown {what} {unknown}; known: {list(known)}")
    return names


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def train_main(argv: list[str] | None = None) -> int:
    """``train.py --config CFG [key=value ...]``."""
    ap = argparse.ArgumentParser(prog="train.py", description="Train a sam-sr refiner (accelerate).")
    ap.add_argument("--config", required=True, help="YAML config, e.g. configs/crm_r18.yaml")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.iterations=100")
    args = ap.parse_args(argv)
    try:
        from .config import load_config
        from .training import train
        cfg = load_config(args.config, args.overrides)
        result = train(cfg)
    except SamSrError as exc:
        return _fail(exc)
    print(f"done: {result['iteration']} iterations, loss {result['first_loss']:.4f} -> "
          f"{result['last_loss']:.4f}, {result['wall_s']:.0f} s, checkpoint {result['final_checkpoint']}")
    return 0


EXAMPLE_IMAGE = "coffee.jpg"
EXAMPLE_MASK = "coffee_coarse.png"


def _add_model_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--checkpoint", help="sam-sr checkpoint (default: the model shipped in the package)")
    ap.add_argument("--variant", default=None,
                    help="require a checkpoint of this variant: crm, v1, v2.1, v2.2, v3.1-v3.4 "
                         "(v1 also runs a crm checkpoint, with SAM's union as its input)")
    ap.add_argument("--sam-type", default="vit_t", help="SAM type for SAM-SR variants and --fusion "
                                                        "(vit_t = MobileSAM, vit_b/vit_l/vit_h)")
    ap.add_argument("--sam-checkpoint", default=None, help="SAM checkpoint for SAM-SR variants / --fusion")
    ap.add_argument("--points-per-side", type=int, default=16,
                    help="SAM automatic-mask point grid for v1 / v2.1 (SAM's default 32; 16 or less on CPU)")
    ap.add_argument("--sam-cache", default=None,
                    help="folder of cached SAM outputs (scripts/precompute_sam.py); read and filled")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    # cascade settings: unset = the checkpoint's recommended `inference` settings, else CascadeConfig's
    ap.add_argument("--scales", default=None,
                    help="cascade scales, comma-separated (default: the model's, else 0.125,0.25,0.5,1)")
    ap.add_argument("--min-size", type=int, default=None,
                    help="skip cascade scales whose longer side is below this many pixels "
                         "(default: the model's, else 512)")
    ap.add_argument("--decode", default=None,
                    help="query selection: full, bbox[:PAD], contour[:WIDTH], strided:N, hierarchical[:N] "
                         "(default: the model's recommended mode, else full)")
    ap.add_argument("--margin", type=float, default=None,
                    help="confidence margin in [0, 0.5): refined probabilities within it of 0.5 keep the "
                         "coarse mask's value (default: the model's, else 0 = off)")
    ap.add_argument("--upsample-to", type=int, default=None,
                    help="refine images whose longer side is below this many pixels at this size and resize "
                         "the result back (default: the model's, else 0 = off)")
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="test-time augmentation: also refine the mirrored image and average (2x time; "
                         "default: the model's, else off)")
    ap.add_argument("--fusion-patches", type=int, default=None,
                    help="run the fusion convolutions in N bands (exact, less memory; 0 = off; default 8)")
    ap.add_argument("--encoder-tile", type=int, default=None,
                    help="encode inputs larger than this many pixels in overlapping tiles (0 = off, the default)")


def _refiner(args):
    from .inference import Refiner
    cascade = {}
    if args.scales is not None:
        try:
            cascade["scales"] = tuple(float(s) for s in args.scales.split(",") if s.strip())
        except ValueError:
            raise SamSrError(f"--scales must be comma-separated numbers, got {args.scales!r}") from None
    if args.decode is not None:   # validated by CascadeConfig
        cascade["decode"] = args.decode
    if args.margin is not None:   # validated by CascadeConfig
        cascade["margin"] = args.margin
    if args.flip is not None:
        cascade["flip"] = args.flip
    for name in ("min_size", "upsample_to", "fusion_patches", "encoder_tile"):
        value = getattr(args, name)
        if value is not None:
            if value < 0:
                raise SamSrError(f"--{name.replace('_', '-')} must be >= 0")
            cascade[name] = value
    cache = None
    if args.sam_cache and args.sam_checkpoint:
        from .sam.cache import SamCache, model_tag
        cache = SamCache(args.sam_cache, model_tag(args.sam_type, args.sam_checkpoint))
    return Refiner.from_checkpoint(args.checkpoint, variant=args.variant, device=args.device,
                                   sam_type=args.sam_type, sam_checkpoint=args.sam_checkpoint,
                                   sam_cache=cache, sam_points_per_side=args.points_per_side, **cascade)


def _soft_path(out: "Path") -> "Path":
    return out.with_name(f"{out.stem}_soft.png")


def _refine_one(refiner, image_path, mask_path, out_path, soft: bool, overlay_path, force: bool) -> None:
    """Validate everything first, then refine and write atomically (no partial outputs)."""
    import numpy as np

    from .io import check_output_path, read_image, read_mask, write_png
    from .visualize import overlay

    targets = [out_path] + ([_soft_path(out_path)] if soft else []) + ([overlay_path] if overlay_path else [])
    for t in targets:
        check_output_path(t, force)
    image = read_image(image_path)
    mask = read_mask(mask_path)
    binary, prob = refiner.refine(image, mask, return_soft=True)
    write_png(out_path, binary)
    if soft:
        write_png(_soft_path(out_path), (np.clip(prob, 0, 1) * 255 + 0.5).astype(np.uint8))
    if overlay_path:
        from .inference.predictor import prepare_mask
        write_png(overlay_path, overlay(image, prepare_mask(mask, image.shape[:2]) >= 0.5, binary))


def infer_main(argv: list[str] | None = None) -> int:
    """``infer.py``: refine one image (``--image --mask --out``) or folders (``--images --masks --out``).

    Masks of any size (same aspect ratio) and bit depth are accepted: they are resized to the image
    and thresholded at half their range. Outputs are binary PNGs (0/255); ``--soft`` also writes
    ``<out>_soft.png`` (the probability x 255).
    """
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="infer.py", description="Refine coarse masks with sam-sr.")
    ap.add_argument("--image", help="input photo")
    ap.add_argument("--mask", help="coarse mask for --image")
    ap.add_argument("--images", help="folder of photos (folder mode)")
    ap.add_argument("--masks", help="folder of coarse masks, matched to photos by file stem")
    ap.add_argument("--example", action="store_true", help="refine the example bundled with sam-sr")
    ap.add_argument("--labels", help="semantic mode: an index or palette PNG label map for --image")
    ap.add_argument("--num-classes", type=int, help="semantic mode: number of classes")
    ap.add_argument("--ignore-index", type=int, default=None, help="semantic mode: label left untouched")
    ap.add_argument("--fusion", default="refine",
                    help="semantic mode: refine (per-class refiner), majority (SAM masks, majority vote) "
                         "or a SAM prompt kind: single_point, points, box, points_box, points_box_mask")
    ap.add_argument("--out", required=True, help="output PNG (single) or output folder (folder mode)")
    ap.add_argument("--overlay", help="also write an overlay PNG (coarse red, refined green)")
    ap.add_argument("--soft", action="store_true", help="also write the soft refined map")
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _add_model_args(ap)
    args = ap.parse_args(argv)
    folder = args.images is not None or args.masks is not None
    try:
        if args.example:
            if args.image or args.mask or folder:
                raise SamSrError("--example takes no --image/--mask/--images/--masks")
            assets = Path(__file__).resolve().parent / "assets"
            args.image, args.mask = str(assets / EXAMPLE_IMAGE), str(assets / EXAMPLE_MASK)
        if args.labels:
            return _infer_labels(args)
        if folder:
            if not (args.images and args.masks) or args.image or args.mask:
                raise SamSrError("folder mode needs both --images and --masks (and no --image/--mask)")
            return _infer_folder(args)
        if not (args.image and args.mask):
            raise SamSrError("give --image and --mask, --images and --masks, or --example")
        refiner = _refiner(args)
        _refine_one(refiner, args.image, args.mask, Path(args.out), args.soft,
                    Path(args.overlay) if args.overlay else None, args.force)
    except SamSrError as exc:
        return _fail(exc)
    print(f"wrote {args.out}" + (f" and {args.overlay}" if args.overlay else ""))
    return 0


def _infer_labels(args) -> int:
    """Semantic mode: read a label map, refine or fuse it, write it with the input's palette."""
    from pathlib import Path

    from .io import check_output_path, read_image, read_label_map, write_png
    from .semantic import refine_semantic

    if not args.image or args.mask or args.images:
        raise SamSrError("--labels needs --image (and no --mask/--images)")
    if not args.num_classes or args.num_classes < 1:
        raise SamSrError("--labels needs --num-classes N")
    out = check_output_path(args.out, args.force)
    image = read_image(args.image)
    labels, palette = read_label_map(args.labels)
    if labels.shape != image.shape[:2]:
        raise SamSrError(f"label map {labels.shape} and image {image.shape[:2]} differ in size")
    if args.fusion == "refine":
        result = refine_semantic(_refiner(args), image, labels, args.num_classes, args.ignore_index)
    else:
        from .sam import load_sam, mask_generator, predictor
        from .sam.label_fusion import PROMPTS, majority_vote, prompt_fusion
        if args.fusion not in ("majority",) + PROMPTS:
            raise SamSrError(f"unknown --fusion {args.fusion!r}")
        if not args.sam_checkpoint:
            raise SamSrError("--fusion with SAM needs --sam-checkpoint")
        sam = load_sam(args.sam_type, args.sam_checkpoint, args.device)
        if args.fusion == "majority":
            result = majority_vote(labels, mask_generator(sam).generate(image), args.ignore_index)
        else:
            result = prompt_fusion(predictor(sam), image, labels, args.fusion, args.ignore_index)
    write_png(out, result.astype(labels.dtype), palette=palette)
    print(f"wrote {out}")
    return 0


def _infer_folder(args) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm

    from .io import IMAGE_EXTS, list_images

    images = list_images(args.images)
    mask_dir = Path(args.masks)
    if not mask_dir.is_dir():
        raise SamSrError(f"folder not found: {mask_dir}")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SamSrError(f"--out must be a folder in folder mode: {out_dir}")
    if not images:
        raise SamSrError(f"no images in {args.images}")
    refiner = _refiner(args)
    failed = 0
    for img in tqdm(images, desc="refine", unit="img"):
        cands = [mask_dir / f"{img.stem}{e}" for e in (".png",) + IMAGE_EXTS]
        mask = next((c for c in cands if c.is_file()), None)
        try:
            if mask is None:
                raise SamSrError(f"no coarse mask for {img.name} in {mask_dir}")
            _refine_one(refiner, img, mask, out_dir / f"{img.stem}.png", args.soft, None, args.force)
        except SamSrError as exc:
            failed += 1
            print(f"error: {img.name}: {exc}", file=sys.stderr)
    print(f"refined {len(images) - failed} of {len(images)} images into {out_dir}"
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def eval_main(argv: list[str] | None = None) -> int:
    """``scripts/evaluate.py``: coarse vs refined IoU (mean and cumulative) and mBA per coarse source."""
    ap = argparse.ArgumentParser(prog="evaluate.py", description="Evaluate a refiner (IoU, mBA).")
    ap.add_argument("--root", default="../shared/data/sod", help="dataset folder")
    ap.add_argument("--layout", default="generic", help="dataset layout (generic, big, ecssd, ...)")
    ap.add_argument("--ids", default="configs/splits/sod_eval.txt",
                    help="file of evaluation ids ('' for all)")
    ap.add_argument("--sources", default="picanet,dss,amulet,scale_gap_x8",
                    help="coarse sources: folders under <root>/coarse and/or scale_gap_xK")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N images")
    ap.add_argument("--coarse-only", action="store_true", help="score the coarse masks only")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    _add_model_args(ap)
    args = ap.parse_args(argv)
    try:
        from .data import load_samples
        from .evaluation import evaluate, format_tables, write_json
        samples = load_samples({"layout": args.layout, "root": args.root, "ids_file": args.ids or None})
        if args.limit:
            samples = samples[: args.limit]
        sources = [s.strip() for s in args.sources.split(",") if s.strip()]
        refiner = None if args.coarse_only else _refiner(args)
        results = evaluate(refiner, samples, sources)
        print(format_tables(results))
        if args.json:
            meta = {"root": args.root, "ids": args.ids, "n_images": len(samples),
                    "checkpoint": None if refiner is None else refiner.info.get("checkpoint"),
                    **({} if refiner is None else refiner.cascade.settings())}
            write_json(args.json, {"meta": meta, "results": results})
    except SamSrError as exc:
        return _fail(exc)
    return 0


def profile_main(argv: list[str] | None = None) -> int:
    """``scripts/profile_inference.py``: latency, peak memory, decoded points, agreement with full."""
    from pathlib import Path

    from .profiling import CONFIGS, default_items, format_table, profile

    ap = argparse.ArgumentParser(prog="profile_inference.py", description=profile_main.__doc__)
    ap.add_argument("--highres", default="../shared/data/highres", help="folder with aeroplane.jpg")
    ap.add_argument("--image", help="profile this image instead (with --mask)")
    ap.add_argument("--mask")
    ap.add_argument("--sizes", default="2048,3840,6000",
                    help="also resize the image to these long sides (2k/4k/6k); '' for none")
    ap.add_argument("--skip-native", action="store_true", help="profile only the resized copies")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated from {list(CONFIGS)}")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per configuration (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each run (0 = default)")
    ap.add_argument("--checkpoint", help="sam-sr checkpoint (default: the shipped model)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default="benchmarks/results/profile.json", help="write rows here")
    args = ap.parse_args(argv)
    try:
        configs = _choices(args.configs, CONFIGS, "configs")
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        if args.image:
            if not args.mask:
                raise SamSrError("--image needs --mask")
            items = [{"name": Path(args.image).stem, "image": args.image, "mask": args.mask,
                      "long_side": None}]
            items += [{**items[0], "name": f"{items[0]['name']}@{s}", "long_side": s} for s in sizes]
        else:
            if not (Path(args.highres) / "aeroplane.jpg").is_file():
                raise SamSrError(f"{args.highres}/aeroplane.jpg not found; pass --image and --mask")
            items = default_items(Path(args.highres), sizes)
        if args.skip_native:
            items = [it for it in items if it["long_side"] is not None]
            if not items:
                raise SamSrError("--skip-native needs --sizes")
        for it in items:
            for key in ("image", "mask"):
                if not Path(it[key]).is_file():
                    raise SamSrError(f"{key} not found: {it[key]}")
        rows = profile(items, configs, args.checkpoint, args.device, args.runs, args.warmup,
                       args.threads)
    except SamSrError as exc:
        return _fail(exc)
    print(format_table(rows))
    if args.json:
        from .evaluation import write_json
        write_json(args.json, {"args": vars(args), "rows": rows})
        print(f"wrote {args.json}")
    return 0


def semantic_eval_main(argv: list[str] | None = None) -> int:
    """``scripts/evaluate_semantic.py``: refine_semantic and SAM fusion methods on CamVid."""
    ap = argparse.ArgumentParser(prog="evaluate_semantic.py", description=semantic_eval_main.__doc__)
    ap.add_argument("--root", default="../shared/data/camvid")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=0, help="first N images (0 = all)")
    ap.add_argument("--num-classes", type=int, default=11)
    ap.add_argument("--ignore-index", type=int, default=11)
    ap.add_argument("--factor", type=int, default=8, help="simulated segmenter's downsampling factor")
    ap.add_argument("--noise", type=float, default=0.1, help="low-resolution label noise probability")
    ap.add_argument("--methods", default="baseline,refine,majority,prompt:single_point,prompt:points,"
                                         "prompt:box,prompt:points_box,prompt:points_box_mask,"
                                         "det:coarse,det:oracle")
    ap.add_argument("--json", default=None)
    _add_model_args(ap)
    ap.set_defaults(sam_checkpoint="../shared/weights/mobile_sam.pt")
    args = ap.parse_args(argv)
    try:
        from .semantic_eval import evaluate_semantic, format_semantic_table, list_pairs
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        pairs = list_pairs(args.root, args.split)
        if args.limit:
            pairs = pairs[: args.limit]
        refiner = _refiner(args) if "refine" in methods else None
        sam = None
        if any(m not in ("baseline", "refine") for m in methods):
            from .sam import load_sam
            sam = load_sam(args.sam_type, args.sam_checkpoint, args.device)
        results = evaluate_semantic(pairs, methods, args.num_classes, args.ignore_index, args.factor,
                                    args.noise, refiner, sam, args.points_per_side)
        print(format_semantic_table(results))
        if args.json:
            from .evaluation import write_json
            write_json(args.json, {"args": vars(args), "n_images": len(pairs), "results": results})
    except SamSrError as exc:
        return _fail(exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``sam-sr {infer,train,eval,eval-semantic,profile,precompute-sam,ablation} ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"infer": infer_main, "train": train_main, "eval": eval_main,
                "eval-semantic": semantic_eval_main, "profile": profile_main,
                "precompute-sam": precompute_main, "ablation": ablation_main}
    if not argv or argv[0] not in commands:
        print("usage: sam-sr {infer,train,eval,eval-semantic,profile,precompute-sam,ablation} [options]  "
              "(sam-sr COMMAND --help for details)",
              file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


def precompute_main(argv: list[str] | None = None) -> int:
    """``scripts/precompute_sam.py``: cache SAM embeddings and automatic masks of a config's images."""
    ap = argparse.ArgumentParser(prog="precompute_sam.py", description=precompute_main.__doc__)
    ap.add_argument("--config", required=True, help="training config; its data.datasets and sam section")
    ap.add_argument("--eval-root", default="../shared/data/sod", help="evaluation dataset (also cached)")
    ap.add_argument("--eval-ids", default="configs/splits/sod_eval.txt",
                    help="evaluation ids file ('' to skip the evaluation images)")
    ap.add_argument("--no-masks", action="store_true", help="embeddings only (enough for v2.2, v3.x)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = ap.parse_args(argv)
    try:
        from .config import load_config
        from .data import concat_samples, load_samples
        from .sam import load_sam
        from .sam.precompute import cache_for, precompute
        cfg = load_config(args.config, args.overrides)
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        s = cfg["sam"]
        if not s.get("checkpoint"):
            raise SamSrError("the config's sam.checkpoint is not set")
        samples = concat_samples(cfg["data"]["datasets"])
        if args.eval_ids:
            samples += load_samples({"layout": "generic", "root": args.eval_root, "ids_file": args.eval_ids})
        cache = cache_for(s["cache"], s["type"], s["checkpoint"])
        sam = load_sam(s["type"], s["checkpoint"])
        out = precompute(sam, [x.image for x in samples], cache, s["points_per_side"], masks=not args.no_masks)
        print(f"{out['computed']} images computed, {out['skipped']} already cached, "
              f"{out['wall_s']:.0f} s; cache {cache.dir}")
    except SamSrError as exc:
        return _fail(exc)
    return 0


def ablation_main(argv: list[str] | None = None) -> int:
    """``scripts/ablation.py``: the SAM-SR ablation table (coarse, CRM, v1, v2.1, v2.2, v3.1-v3.4)."""
    ap = argparse.ArgumentParser(prog="ablation.py", description=ablation_main.__doc__)
    ap.add_argument("--runs", default="runs/sam_sr", help="folder of <variant>/final.pt checkpoints")
    ap.add_argument("--variants", default="crm,v1,v2.1,v2.2,v3.1,v3.2,v3.3,v3.4")
    ap.add_argument("--root", default="../shared/data/sod")
    ap.add_argument("--ids", default="configs/splits/sod_eval.txt")
    ap.add_argument("--sources", default="picanet,dss,amulet")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    ap.add_argument("--sam-type", default="vit_t")
    ap.add_argument("--sam-checkpoint", default="../shared/weights/mobile_sam.pt")
    ap.add_argument("--sam-cache", default="cache/sam", help="SAM cache (scripts/precompute_sam.py)")
    ap.add_argument("--points-per-side", type=int, default=6, help="grid of the cached automatic masks")
    ap.add_argument("--json", default="benchmarks/results/sam_sr_ablation.json")
    ap.add_argument("--figure", default="docs/figures/sam_sr_ablation.png",
                    help="overlays where the best SAM-SR variant beats / loses to CRM ('' = none)")
    args = ap.parse_args(argv)
    try:
        from pathlib import Path

        import numpy as np

        from .ablation import checkpoint_for, format_ablation, pick_examples, run_ablation
        from .variants import available_variants as VARIANTS
        from .data import load_samples
        from .evaluation import coarse_for, write_json
        from .inference import Refiner
        from .io import read_image, read_mask
        from .sam.cache import SamCache, model_tag
        variants = _choices(args.variants, VARIANTS(), "variants")
        if not Path(args.sam_checkpoint).is_file():
            raise SamSrError(f"SAM checkpoint not found: {args.sam_checkpoint}")
        cache = SamCache(args.sam_cache, model_tag(args.sam_type, args.sam_checkpoint))
        refiners = {v: Refiner.from_checkpoint(checkpoint_for(args.runs, v), variant=v,
                                               sam_type=args.sam_type, sam_checkpoint=args.sam_checkpoint,
                                               sam_cache=cache, sam_points_per_side=args.points_per_side)
                    for v in variants}
        samples = load_samples({"layout": "generic", "root": args.root, "ids_file": args.ids or None})
        if args.limit:
            samples = samples[: args.limit]
        sources = [s.strip() for s in args.sources.split(",") if s.strip()]
        out = run_ablation(refiners, samples, sources)
        print(format_ablation(out["results"]))
        if out["v1_used_sam"] is not None:
            print(f"v1 used SAM's union for {100 * out['v1_used_sam']:.1f}% of its inputs")
        sam_rows = [v for v in variants if v != "crm"]
        best = None
        if "crm" in variants and sam_rows:
            gain = {v: np.mean([out["results"][s][v]["iou_mean"] + out["results"][s][v]["mba"]
                                for s in sources]) for v in sam_rows}
            best = max(gain, key=gain.get)
            print(f"best SAM-SR variant (mean of IoU + mBA over sources): {best}")
        meta = {"runs": args.runs, "checkpoints": {v: str(checkpoint_for(args.runs, v)) for v in variants},
                "root": args.root, "ids": args.ids, "n_images": len(samples), "sam_type": args.sam_type,
                "points_per_side": args.points_per_side, "best": best}
        if args.json:
            write_json(args.json, {"meta": meta, **out})
        if args.figure and best is not None:
            from .io import write_png
            from .visualize import label, overlay, side_by_side
            src = sources[0]
            rows = []
            for i, d in pick_examples(out["per_image"][src], "crm", best):
                s = samples[i]
                image, gt = read_image(s.image), read_mask(s.mask) >= 0.5
                coarse = coarse_for(s, src, gt) >= 0.5
                t = max(2, max(image.shape[:2]) // 150)
                panels = [overlay(image, coarse, coarse, thickness=t, gt=gt)]
                for v in ("crm", best):
                    panels.append(overlay(image, coarse, refiners[v].refine(image, coarse), thickness=t, gt=gt))
                panels = [label(p, f"{s.id} {name}") for p, name in zip(panels, ("coarse", "crm", best))]
                rows.append(side_by_side(panels, 240))
                print(f"figure row {s.id}: IoU {best} - crm = {d:+.2f}")
            if rows:
                width = max(r.shape[1] for r in rows)
                rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
                Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
                write_png(args.figure, np.concatenate(rows, 0))
                print(f"figure: {args.figure} (columns: coarse | CRM | {best}; contours: red coarse, "
                      f"green refined, blue ground truth; source {src})")
    except SamSrError as exc:
        return _fail(exc)
    return 0
