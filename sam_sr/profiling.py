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
from typing import Any

import numpy as np

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
    "hierarchical": {"decode": "hierarchical:16", "fusion_patches": 8},
    "hierarchical+tiles": {"decode": "hierarchical:16", "fusion_patches": 8, "encoder_tile": 1024},
    # the model's own recommended settings (the shipped model: contour:2, margin, pixel head in tiles)
    "default": {},
    "default/whole-head": {"pixel_tile": 0},   # ... with the pixel head over the whole output
}


def _child(args: dict[str, Any]) -> dict[str, Any]:
    import torch

    from .inference import Refiner
    from .io import read_image, read_mask, write_png

    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
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
        t0 = time.perf_counter()
        # the benchmarks' masks are binary (resized ones thresholded again, as they always were)
        out, info = refiner.refine(image, mask, return_info=True, mask_threshold=0.5)
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
    args = {"image": image, "mask": mask, "options": CONFIGS[config], "checkpoint": checkpoint,
            "device": device, "long_side": long_side, "runs": runs, "warmup": warmup,
            "out_mask": out_mask, "threads": threads}
    proc = subprocess.run([sys.executable, "-m", "sam_sr.profiling", "--child", json.dumps(args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"profiling {config} on {image} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def profile(items: list[dict[str, Any]], configs: list[str], checkpoint: str | None = None,
            device: str | None = None, runs: int = 3, warmup: int = 1, threads: int = 0) -> list[dict]:
    """Profile ``configs`` on each item ``{"name", "image", "mask", "long_side"}``.

    The first configuration of ``configs`` that is in {"patched", "original"} with full decoding is
    the reference for agreement; rows get ``iou_vs_full`` and ``mba_vs_full`` in percent.
    """
    from tqdm.auto import tqdm

    from .io import read_mask
    from .metrics import boundary_accuracy, iou

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(it, c) for it in items for c in configs]
        for it, cfg in tqdm(jobs, desc="profile", unit="run"):
            safe = cfg.replace(':', '_').replace('+', '_').replace('/', '_')
            out = os.path.join(tmp, f"{it['name']}_{safe}.png")
            res = run_one(it["image"], it["mask"], cfg, checkpoint, device, it.get("long_side"),
                          runs, warmup, out, threads)
            rows.append({"image": it["name"], "config": cfg, **CONFIGS[cfg], **res, "mask_path": out})
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
                f"{bmem / mem:.2f}x | {r['decoded_points']:,} | {f(r['iou_vs_full'])} | "
                f"{f(r['mba_vs_full'])} |")
    return "\n".join(lines) + "\n"


def default_items(highres: Path, sizes: list[int]) -> list[dict[str, Any]]:
    """The aeroplane at its own size plus resizes to each long side in ``sizes``."""
    items = []
    plane = (str(highres / "aeroplane.jpg"), str(highres / "aeroplane_coarse.png"))
    items.append({"name": "aeroplane", "image": plane[0], "mask": plane[1], "long_side": None})
    for s in sizes:
        items.append({"name": f"aeroplane@{s}", "image": plane[0], "mask": plane[1], "long_side": s})
    return items


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    print(json.dumps(_child(json.loads(sys.argv[2]))))
