"""``sam-sr infer``: refine one image, a folder, or a semantic label map."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import SamSrError
from .common import add_model_args, refiner_from_args

HELP = "refine coarse masks: one image, a folder, or a label map"
DESCRIPTION = """Refine coarse masks with sam-sr: one image (--image --mask --out), a folder (--images
--masks --out), a label map (--image --labels --num-classes --out) or the bundled example (--example).
Masks of any size (same aspect ratio) and bit depth are accepted and resized to the image; binary
masks stay binary, soft masks are refined as they are (--mask-threshold binarises them first).
Outputs are binary PNGs (0/255); --soft also writes <out>_soft.png (the probability x 255)."""

EXAMPLE_IMAGE = "coffee.jpg"
EXAMPLE_MASK = "coffee_coarse.png"


def arguments(ap: argparse.ArgumentParser) -> None:
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
    add_model_args(ap)


def _soft_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_soft.png")


def refine_file(refiner, image_path, mask_path, out_path: Path, soft: bool, overlay_path: Path | None,
                force: bool, mask_threshold: float | None = None) -> None:
    """Validate everything first, then refine and write atomically (no partial outputs)."""
    from ..inference.predictor import prepare_mask
    from ..io import check_output_path, read_image, read_mask, write_png
    from ..visualize import overlay

    targets = [out_path] + ([_soft_path(out_path)] if soft else []) + ([overlay_path] if overlay_path else [])
    for t in targets:
        check_output_path(t, force)
    image = read_image(image_path)
    mask = read_mask(mask_path)
    binary, prob = refiner.refine(image, mask, return_soft=True, mask_threshold=mask_threshold)
    write_png(out_path, binary)
    if soft:
        write_png(_soft_path(out_path), (np.clip(prob, 0, 1) * 255 + 0.5).astype(np.uint8))
    if overlay_path:
        write_png(overlay_path, overlay(image, prepare_mask(mask, image.shape[:2], mask_threshold) >= 0.5, binary))


def run(args) -> int:
    folder = args.images is not None or args.masks is not None
    if args.example:
        if args.image or args.mask or folder:
            raise SamSrError("--example takes no --image/--mask/--images/--masks")
        assets = Path(__file__).resolve().parent.parent / "assets"
        args.image, args.mask = str(assets / EXAMPLE_IMAGE), str(assets / EXAMPLE_MASK)
    if args.labels:
        return _labels(args)
    if folder:
        if not (args.images and args.masks) or args.image or args.mask:
            raise SamSrError("folder mode needs both --images and --masks (and no --image/--mask)")
        return _folder(args)
    if not (args.image and args.mask):
        raise SamSrError("give --image and --mask, --images and --masks, or --example")
    refiner = refiner_from_args(args)
    refine_file(refiner, args.image, args.mask, Path(args.out), args.soft,
                Path(args.overlay) if args.overlay else None, args.force, args.mask_threshold)
    print(f"wrote {args.out}" + (f" and {args.overlay}" if args.overlay else ""))
    return 0


def _labels(args) -> int:
    """Semantic mode: read a label map, refine or fuse it, write it with the input's palette."""
    from ..io import check_output_path, read_image, read_label_map, write_png
    from ..semantic import refine_semantic

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
        result = refine_semantic(refiner_from_args(args), image, labels, args.num_classes, args.ignore_index)
    else:
        from ..sam import load_sam, mask_generator, predictor
        from ..sam.label_fusion import PROMPTS, majority_vote, prompt_fusion
        if args.fusion not in ("majority",) + PROMPTS:
            raise SamSrError(f"unknown --fusion {args.fusion!r}")
        if not args.sam_checkpoint:
            raise SamSrError("--fusion with SAM needs --sam-checkpoint")
        sam = load_sam(args.sam_type or "vit_t", args.sam_checkpoint, args.device)
        if args.fusion == "majority":
            result = majority_vote(labels, mask_generator(sam).generate(image), args.ignore_index)
        else:
            result = prompt_fusion(predictor(sam), image, labels, args.fusion, args.ignore_index)
    write_png(out, result.astype(labels.dtype), palette=palette)
    print(f"wrote {out}")
    return 0


def _folder(args) -> int:
    from tqdm.auto import tqdm

    from ..io import IMAGE_EXTS, list_images

    images = list_images(args.images)
    mask_dir = Path(args.masks)
    if not mask_dir.is_dir():
        raise SamSrError(f"folder not found: {mask_dir}")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SamSrError(f"--out must be a folder in folder mode: {out_dir}")
    if not images:
        raise SamSrError(f"no images in {args.images}")
    refiner = refiner_from_args(args)
    failed = 0
    for img in tqdm(images, desc="refine", unit="img"):
        cands = [mask_dir / f"{img.stem}{e}" for e in (".png",) + IMAGE_EXTS]
        mask = next((c for c in cands if c.is_file()), None)
        try:
            if mask is None:
                raise SamSrError(f"no coarse mask for {img.name} in {mask_dir}")
            refine_file(refiner, img, mask, out_dir / f"{img.stem}.png", args.soft, None, args.force,
                        args.mask_threshold)
        except SamSrError as exc:
            failed += 1
            print(f"error: {img.name}: {exc}", file=sys.stderr)
    print(f"refined {len(images) - failed} of {len(images)} images into {out_dir}"
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0
