"""Benchmark: sparse against dense full-resolution steps (issue 14), the shipped model's default run.

On the 80 sod evaluation photos (configs/splits/sod_eval.txt, DSS coarse masks) every step is forced
sparse (at their 960 px working size the band's windows cover most of the input, so by default the
cascade encodes them whole); the bundled example (sam_sr/assets/coffee.jpg) and the aeroplane
(3492x2328) run with the default choice. Prints, per set, the largest absolute difference of the soft
masks and the number of pixels whose binary value differs, and writes
``benchmarks/results/sparse_equality.json``.

    SAM_SR_DATA=/path/to/data python benchmarks/sparse_equality.py [--limit N]
"""
import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="only the first N sod photos")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "sparse_equality.json"))
    args = ap.parse_args(argv)

    import numpy as np

    from sam_sr import Refiner
    from sam_sr.data import load_samples
    from sam_sr.evaluation.evaluate import write_json
    from sam_sr.imaging.read import read_image, read_mask
    from sam_sr.inference import cascade
    from sam_sr.paths import data_path

    sparse = Refiner.from_checkpoint(device="cpu")
    dense = Refiner.from_checkpoint(device="cpu", sparse_tile=0)
    samples = load_samples({"layout": "generic", "root": data_path("sod"),
                            "ids_file": ROOT / "configs/splits/sod_eval.txt"})
    if args.limit:
        samples = samples[:args.limit]
    sets = {"sod_eval (forced sparse)": [(s.image, s.coarse["dss"]) for s in samples],
            "coffee (bundled example)": [(ROOT / "sam_sr/assets/coffee.jpg", ROOT / "sam_sr/assets/coffee_coarse.png")],
            "aeroplane": [(data_path("highres/aeroplane.jpg"), data_path("highres/aeroplane_coarse.png"))]}
    result = {}
    for name, pairs in sets.items():
        diffs, flips, sparse_steps = [], [], 0
        for image_path, mask_path in pairs:
            image, coarse = read_image(image_path), read_mask(mask_path)
            old = cascade.SPARSE_SHARE
            if name.startswith("sod_eval"):
                cascade.SPARSE_SHARE = 10.0
            try:
                res = sparse.predict(image, coarse)
                b_s, soft_s, info = res.mask, res.soft, res.info
            finally:
                cascade.SPARSE_SHARE = old
            res = dense.predict(image, coarse)
            b_d, soft_d = res.mask, res.soft
            diffs.append(float(np.abs(soft_s - soft_d).max()))
            flips.append(int((b_s != b_d).sum()))
            sparse_steps += sum(info.get("sparse_steps", []))
        result[name] = {"photos": len(pairs), "max_abs_soft_diff": max(diffs),
                        "mean_max_abs_soft_diff": float(np.mean(diffs)), "binary_pixels_differing": sum(flips),
                        "sparse_steps": sparse_steps}
        print(json.dumps({name: result[name]}), flush=True)
    write_json(args.json, result)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
