"""Benchmark: where a 4k refinement's peak memory comes from, stage by stage, in one process.

    SAM_SR_DATA=/path/to/data python benchmarks/memory_stages.py [--image PATH --mask PATH] [--variant NAME]

A thread samples the process's resident memory (``/proc/self/statm``) every 5 ms while the default
(or ``--variant``) refines the aeroplane (3492 x 2328) once; each sample is booked to the stage running
then: imports, loading the model, reading the photo, the SAM stage (SAM and the region network), the
decision's change features, the cascade, and the rest of ``predict``. Prints the peak of each stage
and the process's peak (``ru_maxrss``), and writes ``benchmarks/results/memory_stages.json``.
Linux only (``/proc``). The stages are found by wrapping the functions that run them for this run.
"""
import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", help="photo (default: $SAM_SR_DATA/highres/aeroplane.jpg)")
    ap.add_argument("--mask", help="its coarse mask (default: <image>_coarse.png beside it)")
    ap.add_argument("--variant", default=None, help="a variant instead of the default model")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/memory_stages.json"))
    args = ap.parse_args(argv)
    if not Path("/proc/self/statm").is_file():
        print("needs Linux's /proc", file=sys.stderr)
        return 2
    stage = ["imports"]
    peaks: dict[str, float] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            v = _rss_mib()
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), v)
            time.sleep(0.005)

    threading.Thread(target=sample, daemon=True).start()
    from sam_sr import Refiner
    from sam_sr.imaging import read_image, read_mask
    from sam_sr.paths import data_path

    def book(owner, name, label):
        f = getattr(owner, name)

        def wrapped(*a, **k):
            prev, stage[0] = stage[0], label
            try:
                return f(*a, **k)
            finally:
                stage[0] = prev
        setattr(owner, name, wrapped)

    stage[0] = "model loaded"
    refiner = Refiner.from_checkpoint(device="cpu", variant=args.variant)
    stage[0] = "photo read"
    image_path = Path(args.image) if args.image else data_path("highres/aeroplane.jpg")
    mask_path = Path(args.mask) if args.mask else image_path.with_name(f"{image_path.stem}_coarse.png")
    image, mask = read_image(image_path), read_mask(mask_path)
    import sam_sr.inference.predictor as predictor
    import sam_sr.variants.v5 as v5
    from sam_sr.variants.v4 import RegionStage
    book(predictor, "cascade_refine", "cascade")
    book(v5, "find_changes", "decision features")
    book(RegionStage, "region", "SAM and region network")
    stage[0] = "predict (rest)"
    t = time.perf_counter()
    refiner.refine(image, mask >= 0.5)
    wall = time.perf_counter() - t
    stage[0] = "done"
    time.sleep(0.02)
    done.set()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    order = ["imports", "model loaded", "photo read", "SAM and region network", "decision features", "cascade",
             "predict (rest)"]
    rows = [(k, peaks[k]) for k in order if k in peaks]
    print(f"{image_path.name} {image.shape[1]}x{image.shape[0]}, {args.variant or 'default'}: refine {wall:.2f} s")
    print("| stage | peak RSS MiB |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v:.0f} |")
    print(f"| process peak (ru_maxrss) | {maxrss:.0f} |")
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "image": image_path.name, "variant": args.variant or "default",
           "refine_s": wall, "stages_mib": dict(rows), "maxrss_mib": maxrss}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
