"""Overlay figure: coarse (red), refined (green) and ground-truth (blue) contours on evaluation photos.

``python scripts/make_figure.py --ids 100075,101087 --source dss [--zoom 40] --out docs/figures/sod_overlays.png [--force]``

With ``--zoom PX`` each photo gets a second panel: the PX x PX window where the refined mask differs
from the coarse one in the most pixels, drawn pixel by pixel (:func:`sam_sr.visualize.change_map`:
green = fixed, red = broken, yellow = wrong in both), labelled with the whole photo's fixed and broken
pixel counts. The window shows where refinement acted, not where it did best.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from sam_sr import Refiner, SamSrError  # noqa: E402
from sam_sr.data import load_samples  # noqa: E402
from sam_sr.io import check_output_path, read_image, read_mask, write_png  # noqa: E402
from sam_sr.evaluation import coarse_for  # noqa: E402
from sam_sr.visualize import busiest_window, change_map, label, overlay, side_by_side  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/data/sod")
    ap.add_argument("--ids", required=True, help="comma-separated image ids")
    ap.add_argument("--source", default="dss", help="coarse source folder under <root>/coarse, or scale_gap_xK")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--zoom", type=int, default=0, help="add a pixel-level panel of this window size (px)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--force", action="store_true", help="overwrite --out")
    args = ap.parse_args()
    try:
        check_output_path(args.out, args.force)
        wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
        samples = {s.id: s for s in load_samples({"layout": "generic", "root": args.root})}
        refiner = Refiner.from_checkpoint(args.checkpoint)
        panels = []
        for i in wanted:
            if i not in samples:
                raise SamSrError(f"no sample {i!r} in {args.root}")
            s = samples[i]
            image, gt = read_image(s.image), read_mask(s.mask) >= 0.5
            coarse = coarse_for(s, args.source, gt) >= 0.5     # a real source or scale_gap_xK
            refined = refiner.refine(image, coarse) > 127
            panels.append(overlay(image, coarse, refined, gt=gt))
            if args.zoom:
                fixed = int(((coarse != gt) & (refined == gt)).sum())
                broken = int(((coarse == gt) & (refined != gt)).sum())
                window = busiest_window(refined != coarse, args.zoom)
                scale = max(1, round(args.height / (window[2] - window[0])))
                panels.append(label(change_map(image, coarse, refined, gt, window, scale),
                                    f"{i}: fixed {fixed}, broken {broken} px"))
        per_row = 2 if args.zoom else 3
        rows = [side_by_side(panels[k:k + per_row], args.height) for k in range(0, len(panels), per_row)]
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        write_png(args.out, np.concatenate(rows, axis=0))
    except SamSrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
