"""Overlay figure: coarse (red), refined (green) and ground-truth (blue) contours on evaluation photos.

``python scripts/make_figure.py --ids 100075,101087 --source dss --out docs/figures/sod_overlays.png``
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from sam_sr import Refiner, SamSrError  # noqa: E402
from sam_sr.data import load_samples  # noqa: E402
from sam_sr.io import read_image, read_mask, write_png  # noqa: E402
from sam_sr.visualize import overlay, side_by_side  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/data/sod")
    ap.add_argument("--ids", required=True, help="comma-separated image ids")
    ap.add_argument("--source", default="dss", help="coarse source folder under <root>/coarse")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
        samples = {s.id: s for s in load_samples({"layout": "generic", "root": args.root})}
        refiner = Refiner.from_checkpoint(args.checkpoint)
        panels = []
        for i in wanted:
            if i not in samples:
                raise SamSrError(f"no sample {i!r} in {args.root}")
            s = samples[i]
            image, gt = read_image(s.image), read_mask(s.mask) >= 0.5
            coarse = read_mask(s.coarse[args.source]) >= 0.5
            panels.append(overlay(image, coarse, refiner.refine(image, coarse), gt=gt))
        rows = [side_by_side(panels[k:k + 3], args.height) for k in range(0, len(panels), 3)]
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
