"""Build a small COCO instance set from the sod photos (ground truth + a real saliency network's maps).

``python scripts/make_sod_coco.py --out sod_coco [--root DIR] [--ids configs/splits/sod_eval.txt]
[--source dss]`` (``--root`` defaults to ``$SAM_SR_DATA/sod``)

Writes ``OUT/annotations.json`` (ground-truth instances = 8-connected components of each photo's
ground-truth mask; specks under ``--min-area`` pixels are ``iscrowd`` ignore regions) and
``OUT/detections.json`` (a COCO results list: the 8-connected components of the ``--source`` saliency
map thresholded at ``--threshold``, at least ``--min-area`` pixels, score = the mean saliency in the
component). File names in the annotation file are relative to ``<root>/images``. Nothing from
the data folder is copied. See :func:`sam_sr.data.coco.coco_from_masks`.
"""
import argparse
import sys

from sam_sr import SamSrError
from sam_sr.cli.common import data_or
from sam_sr.data.coco import coco_from_masks
from sam_sr.data.datasets import read_ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="sod folder (images/, masks/, coarse/); default $SAM_SR_DATA/sod")
    ap.add_argument("--ids", default="configs/splits/sod_eval.txt", help="file of photo ids ('' = all)")
    ap.add_argument("--limit", type=int, default=0, help="first N ids (sorted) only (0 = all)")
    ap.add_argument("--source", default="dss", help="coarse maps: <root>/coarse/<source>/")
    ap.add_argument("--threshold", type=int, default=128, help="saliency threshold, 0..255")
    ap.add_argument("--min-area", type=int, default=64, help="smallest instance, pixels")
    ap.add_argument("--out", required=True, help="output folder (keep it outside the repository)")
    ap.add_argument("--force", action="store_true", help="overwrite the two JSON files")
    args = ap.parse_args()
    try:
        root = data_or(args.root, "sod", "--root")
        if not (root / "images").is_dir():
            raise SamSrError(f"no images/ folder in {root}")
        # sorted, as scripts/evaluate.py orders them: --limit N takes the same photos
        ids = sorted(read_ids(args.ids)) if args.ids else sorted(p.stem for p in (root / "images").glob("*.jpg"))
        if args.limit < 0:
            raise SamSrError("--limit must be >= 0")
        if args.limit:
            ids = ids[: args.limit]
        if not 0 <= args.threshold <= 255 or args.min_area < 1:
            raise SamSrError("--threshold must be in 0..255 and --min-area >= 1")
        info = coco_from_masks(ids, root / "images", root / "masks", root / "coarse" / args.source,
                               args.out, args.threshold, args.min_area, force=args.force)
    except SamSrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{info['images']} photos, {info['instances']} ground-truth instances ({info['crowd']} "
          f"specks as crowd), {info['detections_n']} detections: {info['annotations']}, "
          f"{info['detections']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
