"""Benchmark: the GPU profile: latency (median of 5 after a warm-up, CUDA synchronised) and CUDA
peak memory of the cascade configurations original, patched, strided:4, contour, bbox, hierarchical
and the default, at 2k, 4k and 6k, in fp32 and bf16, and MobileSAM's image encoder over 8 photos at
batches of 1, 2, 4 and 8 photos per call (``sam-sr infer --sam-batch``), in one run.

    SAM_SR_DATA=/path/to/data python benchmarks/gpu_profile.py [--device cuda] [--json PATH]

Prints a markdown table and writes ``benchmarks/results/gpu_profile.json`` (one file, replaced). ``--device cpu`` (with
small ``--sizes`` and ``--runs 1``) tests the script without a GPU; its peaks are then the process's
peak RSS, not per configuration.
"""
import argparse
import json
import sys
from pathlib import Path

from sam_sr.reporting.profiling import GPU_CONFIGS, GPU_PRECISIONS, GPU_SIZES


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", help="photo (default: $SAM_SR_DATA/highres/aeroplane.jpg)")
    ap.add_argument("--mask", help="its coarse mask (default: aeroplane_coarse.png beside it)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--checkpoint", default=None, help="sam-sr checkpoint (default: the shipped model)")
    ap.add_argument("--sizes", default=",".join(map(str, GPU_SIZES)))
    ap.add_argument("--configs", default=",".join(GPU_CONFIGS))
    ap.add_argument("--precisions", default=",".join(GPU_PRECISIONS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--sam-batches", default="1,2,4,8",
                    help="MobileSAM's image encoder over several photos per call (sam-sr infer --sam-batch): "
                         "the batch sizes to time ('' to skip)")
    ap.add_argument("--sam-photos", type=int, default=8, help="photos (crops of --image) for --sam-batches")
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent.parent / "benchmarks" / "results"
                                          / "gpu_profile.json"))
    args = ap.parse_args(argv)

    import torch

    from sam_sr.evaluation.evaluate import write_json
    from sam_sr.imaging.read import read_image, read_mask
    from sam_sr.paths import data_path
    from sam_sr.reporting.profiling import format_gpu_table, format_sam_batch_table, gpu_profile, sam_batch_profile

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device; pass --device cpu to test the script", file=sys.stderr)
        return 2
    image_path = Path(args.image) if args.image else data_path("highres/aeroplane.jpg")
    mask_path = Path(args.mask) if args.mask else image_path.with_name(f"{image_path.stem}_coarse.png")
    image, mask = read_image(image_path), read_mask(mask_path)
    mask = (mask >= 0.5).astype("uint8") * 255
    rows = gpu_profile(image, mask, args.checkpoint, args.device,
                       [int(s) for s in args.sizes.split(",") if s], args.configs.split(","),
                       args.precisions.split(","), args.runs, args.warmup,
                       progress=lambda r: print(json.dumps({k: r[k] for k in ("size", "config", "precision",
                                                                              "latency_s")}), flush=True))
    print(format_gpu_table(rows))
    sam_rows = []
    batches = [int(b) for b in args.sam_batches.split(",") if b]
    if batches:
        sam_rows = sam_batch_profile(image, args.device, batches, args.sam_photos, "bf16", args.runs, args.warmup)
        print(format_sam_batch_table(sam_rows))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    if args.json:
        write_json(args.json, {"args": vars(args), "device": device, "torch": torch.__version__, "rows": rows,
                               "sam_batches": sam_rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
