"""Inference profiler: latency, peak memory, decoded query points and agreement with ``full``.

Each (image, configuration) runs in a fresh Python process so that peak memory is its own:
CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak RSS (``ru_maxrss``), also reported
after loading (model + image, before refining) so the refinement's own share can be read off.
Latency is the median of ``runs`` refinements after ``warmup`` untimed ones.
The parent computes agreement (IoU and mBA) of each configuration's output with the ``full``
reference of the same image, and prints a table in the SAM-SR thesis's format.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import SamSrError

#: name -> Refiner cascade options. "original" is the unpatched, fully decoded CRM cascade; the
#: others override the model's recommended settings only where they name a setting.
CONFIGS: dict[str, dict[str, Any]] = {
    "original": {"decode": "full", "fusion_patches": 0},
    "patched": {"decode": "full", "fusion_patches": 8},
    "bbox": {"decode": "bbox:32", "fusion_patches": 8},
    "contour": {"decode": "contour:16", "fusion_patches": 8},
    "strided:2": {"decode": "strided:2", "fusion_patches": 8},
    "strided:4": {"decode": "strided:4", "fusion_patches": 8},
    "strided:8": {"decode": "strided:8", "fusion_patches": 8},
    "hierarchical": {"decode": "hierarchical:4", "fusion_patches": 8},
    "hierarchical+tiles": {"decode": "hierarchical:4", "fusion_patches": 8, "encoder_tile": 1024},
    # the model's own recommended settings (the shipped model: contour:2, margin, pixel head in tiles)
    "default": {},
    "default/whole-head": {"pixel_tile": 0},   # ... with the pixel head over the whole output
    "default/dense": {"sparse_tile": 0},       # ... with every step encoded over the whole input
    # crm-full (the CRM trained on every pixel) with full and strided decoding (GPU profile)
    "crm-full/full": {"decode": "full", "fusion_patches": 8},
    "crm-full/strided:4": {"decode": "strided:4", "fusion_patches": 8},
}

#: Peers run by the same harness (not sam-sr configurations): name -> description. ``cascadepsp``:
#: CascadePSP (Cheng et al. 2020), pip ``segmentation-refinement`` 0.6, ``refine(fast=False, L=900)``,
#: with random weights (its weights download at run time; the time and memory do not depend on them).
#: It must be importable (``pip install segmentation-refinement==0.6``, or ``--target DIR`` with DIR on
#: PYTHONPATH; its ``requests`` import, used only to download, is stubbed when missing).
BASELINES: dict[str, str] = {
    "cascadepsp": "CascadePSP, segmentation-refinement 0.6, refine(fast=False, L=900), random weights",
}


class _CascadePSP:
    """CascadePSP with random weights behind sam-sr's ``refine`` call (see :data:`BASELINES`)."""

    def __init__(self, device: str | None):
        import types

        import torch
        sys.modules.setdefault("requests", types.ModuleType("requests"))   # only its download uses it
        import segmentation_refinement as sr
        from segmentation_refinement.models.psp.pspnet import RefinementModule
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:   # its loader reads a DataParallel state dict
            torch.save({f"module.{k}": v for k, v in RefinementModule().state_dict().items()},
                       os.path.join(tmp, "model"))
            self.refiner = sr.Refiner(device=str(self.device), model_folder=tmp, download_and_check_model=False)

    def predict(self, image: np.ndarray, mask: np.ndarray, mask_threshold=0.5):
        out = self.refiner.refine(image, ((mask >= mask_threshold) * 255).astype(np.uint8), fast=False, L=900)
        binary = ((out >= 128) * 255).astype(np.uint8)
        return SimpleNamespace(mask=binary, info={"decoded_points": None})


def _child(args: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ..imaging.read import read_image, read_mask
    from ..imaging.write import write_png
    from ..inference import Refiner

    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    if args.get("baseline") == "cascadepsp":
        refiner = _CascadePSP(args["device"])
    else:
        # a speed benchmark runs every decode mode, also those the model was not trained for (see IoU vs full)
        refiner = Refiner.from_checkpoint(args["checkpoint"], device=args["device"], allow_any_decode=True,
                                          **args["options"])
    image = read_image(args["image"])
    mask = read_mask(args["mask"])
    if args.get("long_side"):
        import cv2
        h, w = image.shape[:2]
        s = args["long_side"] / max(h, w)
        size = (round(w * s), round(h * s))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
    cuda = refiner.device.type == "cuda"
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    out = None
    info: dict[str, Any] = {}
    for i in range(args["warmup"] + args["runs"]):
        if cuda:
            torch.cuda.synchronize()
        if getattr(refiner, "sam_inputs", None) is not None:
            refiner.sam_inputs.source.forget_image()   # each run pays SAM's image encoder, as a new photo
        t0 = time.perf_counter()
        # the benchmarks' masks are binary (resized ones thresholded again, as they always were)
        result = refiner.predict(image, mask, mask_threshold=0.5)
        out, info = result.mask, result.info
        if cuda:
            torch.cuda.synchronize()
        if i >= args["warmup"]:
            times.append(time.perf_counter() - t0)
    write_png(args["out_mask"], out)
    return {"latency_s": statistics.median(times), "times_s": times,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_after_load_bytes": rss_loaded,
            "cuda_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "decoded_points": info.get("decoded_points"),
            "pixel_fraction": info.get("pixel_fraction"),
            "size": list(image.shape[:2]), "device": str(refiner.device)}


def run_one(image: str, mask: str, config: str, checkpoint: str | None, device: str | None,
            long_side: int | None, runs: int, warmup: int, out_mask: str, threads: int = 0) -> dict:
    """Run one configuration on one image in a fresh process; returns the child's measurements."""
    args = {"image": image, "mask": mask, "options": CONFIGS.get(config, {}),
            "baseline": config if config in BASELINES else None, "checkpoint": checkpoint,
            "device": device, "long_side": long_side, "runs": runs, "warmup": warmup,
            "out_mask": out_mask, "threads": threads}
    proc = subprocess.run([sys.executable, "-m", "sam_sr.reporting.profiling", "--child", json.dumps(args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ") or "Error:" in ln]
        raise SamSrError(f"profiling {config} on {image} failed: "
                         f"{(errors[-1] if errors else proc.stderr.strip()[-300:]).removeprefix('error: ')}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def profile(items: list[dict[str, Any]], configs: list[str], checkpoint: str | None = None,
            device: str | None = None, runs: int = 3, warmup: int = 1, threads: int = 0) -> list[dict]:
    """Profile ``configs`` on each item ``{"name", "image", "mask", "long_side"}``.

    The first configuration of ``configs`` that is in {"patched", "original"} with full decoding is
    the reference for agreement; rows get ``iou_vs_full`` and ``mba_vs_full`` in percent.
    """
    from tqdm.auto import tqdm

    from ..evaluation.metrics import boundary_accuracy, iou
    from ..imaging.read import read_mask

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(it, c) for it in items for c in configs]
        for it, cfg in tqdm(jobs, desc="profile", unit="run"):
            safe = cfg.replace(':', '_').replace('+', '_').replace('/', '_')
            out = os.path.join(tmp, f"{it['name']}_{safe}.png")
            res = run_one(it["image"], it["mask"], cfg, checkpoint, device, it.get("long_side"),
                          runs, warmup, out, threads)
            rows.append({"image": it["name"], "config": cfg, **CONFIGS.get(cfg, {}), **res, "mask_path": out})
        for it in items:
            mine = [r for r in rows if r["image"] == it["name"]]
            ref = next((r for r in mine if r["config"] in ("patched", "original")), None)
            ref_mask = read_mask(ref["mask_path"]) >= 0.5 if ref else None
            for r in mine:
                m = read_mask(r["mask_path"]) >= 0.5
                r["iou_vs_full"] = 100 * iou(m, ref_mask) if ref else None
                r["mba_vs_full"] = 100 * boundary_accuracy(m, ref_mask) if ref else None
        for r in rows:
            del r["mask_path"]
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table: one row per image and configuration, ratios against ``original`` (or the
    first configuration) of the same image. "refine share" is the peak RSS minus the RSS after
    loading the model and image (what refining itself added); the memory ratio uses CUDA peaks on a
    GPU, else the refine share."""
    lines = ["| image | size | config | latency (s) | speed-up | peak RSS (GiB) | refine share (GiB) | "
             "CUDA peak (GiB) | memory ratio | decoded points | IoU vs full | mBA vs full |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["image"] for r in rows):
        mine = [r for r in rows if r["image"] == name]
        base = next((r for r in mine if r["config"] == "original"), mine[0])
        for r in mine:
            share = lambda x: x["peak_rss_bytes"] - x["rss_after_load_bytes"]  # noqa: E731
            mem = r["cuda_peak_bytes"] if r["cuda_peak_bytes"] is not None else max(1, share(r))
            bmem = base["cuda_peak_bytes"] if base["cuda_peak_bytes"] is not None else share(base)
            cuda = f"{r['cuda_peak_bytes'] / 2**30:.2f}" if r["cuda_peak_bytes"] is not None else "-"
            f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            lines.append(
                f"| {name} | {r['size'][1]}x{r['size'][0]} | {r['config']} | {r['latency_s']:.2f} | "
                f"{base['latency_s'] / r['latency_s']:.2f}x | {r['peak_rss_bytes'] / 2**30:.2f} | "
                f"{(r['peak_rss_bytes'] - r['rss_after_load_bytes']) / 2**30:.2f} | {cuda} | "
                f"{bmem / mem:.2f}x | {'-' if r['decoded_points'] is None else format(r['decoded_points'], ',')} | "
                f"{f(r['iou_vs_full'])} | "
                f"{f(r['mba_vs_full'])} |")
    return "\n".join(lines) + "\n"


def format_summary(rows: list[dict], ours: str = "default", peer: str = "cascadepsp") -> str:
    """Markdown table of the issue-14 targets: per image, ``ours`` (latency, peak RSS) against
    ``peer`` (how many times faster, and the share of the peer's peak RSS), and the growth of our
    latency from the smallest to the largest image. Empty when ``ours`` was not profiled."""
    by = {(r["image"], r["config"]): r for r in rows}
    images = [n for n in dict.fromkeys(r["image"] for r in rows) if (n, ours) in by]
    if not images:
        return ""
    lines = [f"| image | size | {ours} time (s) | {ours} peak RSS (GiB) | {peer} time (s) | "
             f"{peer} peak RSS (GiB) | faster | RSS share of {peer} |", "|---|---|---|---|---|---|---|---|"]
    for n in images:
        a, b = by[(n, ours)], by.get((n, peer))
        gib = lambda r: r["peak_rss_bytes"] / 2**30  # noqa: E731
        peer_cols = (f"{b['latency_s']:.2f} | {gib(b):.2f} | {b['latency_s'] / a['latency_s']:.2f}x | "
                     f"{gib(a) / gib(b):.2f}") if b else "- | - | - | -"
        lines.append(f"| {n} | {a['size'][1]}x{a['size'][0]} | {a['latency_s']:.2f} | {gib(a):.2f} | {peer_cols} |")
    area = lambda n: by[(n, ours)]["size"][0] * by[(n, ours)]["size"][1]  # noqa: E731
    lo, hi = min(images, key=area), max(images, key=area)
    if lo != hi:
        lines.append(f"\ngrowth {hi} / {lo}: time x{by[(hi, ours)]['latency_s'] / by[(lo, ours)]['latency_s']:.2f} "
                     f"for pixels x{area(hi) / area(lo):.2f}")
    return "\n".join(lines) + "\n"


def default_items(highres: Path, sizes: list[int]) -> list[dict[str, Any]]:
    """The aeroplane at its own size plus resizes to each long side in ``sizes``."""
    items = []
    plane = (str(highres / "aeroplane.jpg"), str(highres / "aeroplane_coarse.png"))
    items.append({"name": "aeroplane", "image": plane[0], "mask": plane[1], "long_side": None})
    for s in sizes:
        items.append({"name": f"aeroplane@{s}", "image": plane[0], "mask": plane[1], "long_side": s})
    return items


#: The configurations of the GPU profile (issue 14, item 5), as in :data:`CONFIGS`.
GPU_CONFIGS = ("original", "patched", "strided:4", "contour", "bbox", "hierarchical", "default",
               "crm-full/full", "crm-full/strided:4")
#: Its long sides in pixels (2k, 4k, 6k) and precisions (CascadeConfig.precision).
GPU_SIZES = (2048, 3840, 6000)
GPU_PRECISIONS = ("fp32", "bf16")


def _timed(work, cuda: bool, runs: int, warmup: int) -> tuple[list[float], dict[str, Any], Any]:
    """``work()`` run ``warmup`` untimed then ``runs`` timed times (CUDA synchronised around each):
    (the timed runs' seconds, ``{"peak_bytes", "peak_kind"}``: CUDA's peak allocated memory since the
    call began, or the process's peak RSS so far on the CPU, and the last run's result)."""
    import torch
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, result = [], None
    for i in range(warmup + runs):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = work()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return times, {"peak_bytes": peak, "peak_kind": "cuda_max_allocated" if cuda else "process_peak_rss"}, result


def gpu_profile(image: np.ndarray, mask: np.ndarray, checkpoint: str | None = None, device: str = "cuda",
                sizes=GPU_SIZES, configs=GPU_CONFIGS, precisions=GPU_PRECISIONS, runs: int = 5,
                warmup: int = 1, progress=None) -> list[dict[str, Any]]:
    """Latency and peak memory of cascade configurations at several sizes and precisions, in one
    process (the model is loaded once; ``torch.cuda.reset_peak_memory_stats`` separates the peaks).

    Args:
        image: uint8 (H, W, 3) RGB; mask: its coarse mask, uint8 (H, W) (thresholded at 0.5).
        device: ``"cuda"`` (the intended use), or ``"cpu"`` (a test of the script: the peak is then
            the process's peak RSS so far, not per configuration).
        sizes: long sides the image and mask are resized to (INTER_AREA / bilinear).
        runs, warmup: timed runs (median) after untimed ones; CUDA is synchronised around each.

    Returns:
        rows ``{"size", "config", "precision", "latency_s", "times_s", "peak_bytes", "peak_kind",
        "decoded_points", "iou_vs_original"}`` (IoU in percent against ``original`` at the same size
        and precision, None when ``original`` is not among ``configs``).
    """
    import cv2

    from ..evaluation.metrics import iou
    from ..inference import Refiner

    main = Refiner.from_checkpoint(checkpoint, device=device)
    bases = {"main": main.cascade}
    full = None                                   # crm-full, loaded when a crm-full/ configuration runs
    cuda = main.device.type == "cuda"
    rows = []
    for long_side in sizes:
        h, w = image.shape[:2]
        s = long_side / max(h, w)
        wh = (round(w * s), round(h * s))
        img = cv2.resize(image, wh, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        msk = cv2.resize(mask, wh, interpolation=cv2.INTER_LINEAR)
        for precision in precisions:
            ref = None
            for name in configs:
                if name.startswith("crm-full/") and full is None:
                    full = Refiner.from_checkpoint(variant="crm-full", device=device)
                    bases["full"] = full.cascade
                refiner = full if name.startswith("crm-full/") else main
                refiner.cascade = bases["full" if refiner is full else "main"].replace(**CONFIGS[name],
                                                                                       precision=precision)
                times, peak, result = _timed(lambda: refiner.predict(img, msk, mask_threshold=0.5), cuda,
                                             runs, warmup)
                out, info = result.mask, result.info
                if name == "original":
                    ref = out
                rows.append({"size": [img.shape[0], img.shape[1]], "config": name, "precision": precision,
                             "latency_s": statistics.median(times), "times_s": times, **peak,
                             "decoded_points": info.get("decoded_points"),
                             "iou_vs_original": 100 * iou(out > 0, ref > 0) if ref is not None else None})
                if progress:
                    progress(rows[-1])
    main.cascade = bases["main"]
    if full is not None:
        full.cascade = bases["full"]
    return rows


def format_gpu_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`gpu_profile` rows, with ratios against ``original`` at the same size
    and precision (latency speed-up, peak-memory reduction)."""
    lines = ["| size | precision | config | latency (s) | speed-up | peak (GiB) | memory ratio | "
             "decoded points | IoU vs original |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next((b for b in rows if b["size"] == r["size"] and b["precision"] == r["precision"]
                     and b["config"] == "original"), r)
        iou_txt = "-" if r["iou_vs_original"] is None else f"{r['iou_vs_original']:.2f}"
        lines.append(f"| {r['size'][1]}x{r['size'][0]} | {r['precision']} | {r['config']} | {r['latency_s']:.3f} | "
                     f"{base['latency_s'] / r['latency_s']:.2f}x | {r['peak_bytes'] / 2**30:.2f} | "
                     f"{base['peak_bytes'] / max(1, r['peak_bytes']):.2f}x | {r['decoded_points']:,} | {iou_txt} |")
    return "\n".join(lines) + "\n"


def sam_batch_profile(image: np.ndarray, device: str = "cuda", batches=(1, 2, 4, 8), photos: int = 8,
                      precision: str = "bf16", runs: int = 3, warmup: int = 1) -> list[dict[str, Any]]:
    """Time per photo of the bundled MobileSAM's image encoder over ``photos`` photos, ``batch`` per
    call (:func:`sam_sr.sam.encode.encode_images`, what ``sam-sr infer --images ... --sam-batch``
    runs), for each of ``batches``, in one process.

    Args:
        image: uint8 (H, W, 3) RGB; the photos are ``photos`` crops of it (each 3/4 of its height
            and width, at offsets along the diagonal), so their content differs.
        device: ``"cuda"`` (the intended use) or ``"cpu"``.
        precision: the encoder's precision (``fp32``, ``bf16``, ``auto``).
        runs, warmup: timed passes over all photos (median) after untimed ones; CUDA is synchronised.

    Returns:
        rows ``{"batch", "precision", "photos", "per_photo_s", "times_s", "peak_bytes", "peak_kind"}``
        (seconds per photo; CUDA's peak allocated memory in bytes, or the process's peak RSS on the
        CPU).
    """
    from ..sam.encode import encode_images
    from ..sam.loader import load_sam, predictor, set_encoder_precision
    sam = load_sam("vit_t", None, device)
    used = set_encoder_precision(sam, precision)
    pred = predictor(sam)
    h, w = image.shape[:2]
    ch, cw = max(1, 3 * h // 4), max(1, 3 * w // 4)
    steps = max(1, photos - 1)
    offsets = [((h - ch) * k // steps, (w - cw) * k // steps) for k in range(photos)]
    crops = [np.ascontiguousarray(image[y:y + ch, x:x + cw]) for y, x in offsets]
    cuda = str(device).startswith("cuda")
    rows = []
    for batch in batches:
        times, peak, _ = _timed(lambda: encode_images(pred, crops, int(batch)), cuda, runs, warmup)
        times = [t / photos for t in times]
        rows.append({"batch": int(batch), "precision": used, "photos": photos,
                     "per_photo_s": statistics.median(times), "times_s": times, **peak})
    return rows


def format_sam_batch_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`sam_batch_profile` rows, with the speed-up against batch 1."""
    base = next((r for r in rows if r["batch"] == 1), rows[0] if rows else None)
    lines = ["| SAM encoder batch | precision | s per photo | speed-up over batch 1 | peak (GiB) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['precision']} | {r['per_photo_s']:.4f} | "
                     f"{base['per_photo_s'] / r['per_photo_s']:.2f}x | {r['peak_bytes'] / 2**30:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    try:
        print(json.dumps(_child(json.loads(sys.argv[2]))))
    except SamSrError as exc:          # one line back to the parent, which raises it as its own error
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
