"""Where each dataset's ground-truth boundaries sit relative to the image's edges.

``python scripts/boundary_alignment.py [--dataset ROOT[:IDS_FILE] ...] [--max-distance 4] [--json OUT]``

Prints, per dataset, the mean Sobel gradient magnitude of the photos at each signed distance from
the ground-truth boundary (pixels, negative inside; :func:`sam_sr.data.alignment.edge_profile`,
averaged over images). A peak inside the mask (-1, -2) means the masks run beyond the object's edge.
Datasets use the ``generic`` layout (``images/`` + ``masks/``).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sam_sr.data import load_samples  # noqa: E402
from sam_sr.data.alignment import edge_profile  # noqa: E402
from sam_sr.errors import SamSrError  # noqa: E402
from sam_sr.io import check_output_path, read_image, read_mask  # noqa: E402

DEFAULT = ["../shared/data/sod:configs/splits/sod_train_fit.txt", "../shared/data/horse"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", action="append", help="ROOT or ROOT:IDS_FILE (repeatable; default: "
                                                       "sod's training photos and horse)")
    ap.add_argument("--max-distance", type=int, default=4, help="report distances -D..-1, 1..D px")
    ap.add_argument("--json", default=None, help="also write the profiles here")
    ap.add_argument("--force", action="store_true", help="overwrite --json")
    args = ap.parse_args()
    from tqdm.auto import tqdm
    try:
        if args.json:
            check_output_path(args.json, args.force)
        results = {}
        for spec in args.dataset or DEFAULT:
            root, _, ids = spec.partition(":")
            samples = load_samples({"layout": "generic", "root": root, **({"ids_file": ids} if ids else {})})
            sums: dict[int, list[float]] = {}
            for s in tqdm(samples, desc=Path(root).name, unit="img"):
                for d, v in edge_profile(read_image(s.image), read_mask(s.mask) >= 0.5,
                                         args.max_distance).items():
                    sums.setdefault(d, []).append(v)
            results[spec] = {"n_images": len(samples),
                             "profile": {d: float(np.mean(v)) for d, v in sorted(sums.items())}}
    except SamSrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ds = sorted({d for r in results.values() for d in r["profile"]})
    print("| dataset | images | " + " | ".join(f"{d:+d} px" for d in ds) + " |")
    print("|---|---|" + "---|" * len(ds))
    for spec, r in results.items():
        print(f"| {spec} | {r['n_images']} | " + " | ".join(f"{r['profile'].get(d, float('nan')):.1f}"
                                                         for d in ds) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
