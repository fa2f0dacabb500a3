"""Benchmark: checks of harm that need the data folder, beside their baselines in the same run.

    SAM_SR_DATA=/path/to/data python benchmarks/harm_checks.py [--only bike,reencode,aeroplane]
    SAM_SR_DATA=/path/to/data python benchmarks/harm_checks.py --only bike --checkpoint candidate.pt

- ``bike``: ``wild/bike.jpg`` with U2-Net's coarse mask: the share of the coarse mask's area that
  changes, and the share of the coarse mask's enclosed holes (the wheel interiors, the frame
  triangle) that the refined mask fills, for the default, ``--variant v4`` (every region change
  taken) and ``--variant crm``, and each ``--checkpoint`` (a candidate's column);
- ``reencode``: the 80 sod evaluation photos (the first ``--photos``) (DSS coarse masks) saved as PNG, re-saved as JPEG
  (quality 90) and as grayscale: the IoU of each refined mask with the original photo's (mean, min),
  for the default (``--regions keep``: the default with the coarse mask's regions kept whole);
- ``aeroplane``: the default's time against ``--variant v4`` on the aeroplane (3492 x 2328), both
  loaded in one process, median of 5 alternating warm runs, SAM's encoder run every time: the
  decision's share of the default's time.

Prints a table and writes ``benchmarks/results/harm_checks.json`` (replaced, or ``--json``; with
``--checkpoint``, ``benchmarks/results/harm_checks_candidates.json``, so the default's file is kept).
CPU only.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: The refiners of the bike check (None: the default) and their report columns.
BIKE_VARIANTS = (None, "v4", "crm", "v5")
BIKE_COLUMNS = tuple(v or "default" for v in BIKE_VARIANTS)


def bike(data: Path, checkpoints: tuple[str, ...] = ()) -> dict:
    from sam_sr import Refiner
    from sam_sr.imaging import read_image, read_mask
    from sam_sr.variants.v5.changes import holes
    img = read_image(data / "wild/images/bike.jpg")
    coarse = read_mask(data / "wild/coarse/u2net/bike.png") >= 0.5
    hole = holes(coarse)
    out = {}
    runs = [(v or "default", {"variant": v}) for v in BIKE_VARIANTS]
    runs += [(f"ckpt:{Path(c).name}", {"path": c}) for c in checkpoints]
    for name, how in runs:
        refined = Refiner.from_checkpoint(device="cpu", **how).refine(img, coarse) > 0
        out[name] = {"changed_share_of_coarse": float((refined != coarse).sum() / coarse.sum()),
                               "hole_px": int(hole.sum()),
                               "holes_filled_share": float(refined[hole].mean()) if hole.any() else None}
    return out


def reencode(data: Path, photos: int = 80, regions: str = "auto") -> dict:
    from PIL import Image

    from sam_sr import Refiner
    from sam_sr.data.datasets import read_ids
    from sam_sr.evaluation.metrics import iou
    from sam_sr.imaging import read_image, read_mask
    ids = read_ids(ROOT / "configs/splits/sod_eval.txt")[:photos]
    r = Refiner.from_checkpoint(device="cpu", regions=regions)
    out: dict[str, list[float]] = {"png": [], "jpeg90": [], "gray": []}
    for i in ids:
        img, m = read_image(data / f"sod/images/{i}.jpg"), read_mask(data / f"sod/coarse/dss/{i}.png")
        ref = r.refine(img, m) > 0
        for name in out:
            buf = io.BytesIO()
            pim = Image.fromarray(img)
            if name == "png":
                pim.save(buf, format="PNG")
            elif name == "jpeg90":
                pim.save(buf, format="JPEG", quality=90)
            else:
                pim.convert("L").save(buf, format="PNG")
            buf.seek(0)
            alt = np.asarray(Image.open(buf).convert("RGB"))
            out[name].append(iou(r.refine(alt, m) > 0, ref))
    return {k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "photos": len(v)} for k, v in out.items()}


def aeroplane(data: Path, rounds: int = 5) -> dict:
    """The default's time against ``--variant v4``'s on the aeroplane: both refiners loaded and warmed
    up, then ``rounds`` rounds of one run each, alternating (so that neither runs in a different state
    of the process's memory than the other); SAM encodes the photo again every run. Medians."""
    from sam_sr import Refiner
    from sam_sr.imaging import read_image, read_mask
    img, m = read_image(data / "highres/aeroplane.jpg"), read_mask(data / "highres/aeroplane_coarse.png")
    refiners = {v or "default": Refiner.from_checkpoint(device="cpu", variant=v) for v in ("v4", None)}
    for r in refiners.values():
        r.refine(img, m)                                   # warm-up
    ts: dict[str, list[float]] = {k: [] for k in refiners}
    for _ in range(rounds):
        for k, r in refiners.items():
            r.sam_inputs.source.forget_image()             # SAM encodes the photo again
            s = time.perf_counter()
            r.refine(img, m)
            ts[k].append(time.perf_counter() - s)
    t = {k: float(np.median(v)) for k, v in ts.items()}
    return {"time_s": t, "runs_s": ts, "decision_overhead": t["default"] / t["v4"] - 1}


def report(res: dict) -> str:
    columns = list(res.get("bike") or BIKE_COLUMNS)

    def row(check: str, *cells: str) -> str:   # cells of the first columns; the rest left empty
        return f"| {check} | " + " | ".join(list(cells) + [""] * (len(columns) - len(cells))) + " |"
    lines = [row("check", *columns), "|---" * (len(columns) + 1) + "|"]
    if "bike" in res:
        b = res["bike"]
        lines.append(row("bike: coarse area changed", *(f"{100 * b[k]['changed_share_of_coarse']:.1f}%"
                                                         for k in columns)))
        lines.append(row("bike: holes filled", *(f"{100 * b[k]['holes_filled_share']:.1f}%" for k in columns)))
    if "aeroplane" in res:
        a = res["aeroplane"]
        lines.append(row("aeroplane time (s)", f"{a['time_s']['default']:.2f} ({100 * a['decision_overhead']:+.1f}%)",
                         f"{a['time_s']['v4']:.2f}"))
    if "reencode" in res:
        for k, v in res["reencode"].items():
            keep = " (--regions keep)" if res.get("reencode_regions") == "keep" else ""
            lines.append(row(f"re-encoded as {k}{keep}: IoU with the original's (mean, min)",
                             f"{v['mean']:.3f}, {v['min']:.3f}"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="bike,reencode,aeroplane", help="comma-separated checks")
    ap.add_argument("--photos", type=int, default=80, help="sod evaluation photos for the re-encoding check")
    ap.add_argument("--regions", choices=("auto", "keep"), default="auto",
                    help="the re-encoding check's refiner: the default, or the default with --regions keep")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                    help="a candidate checkpoint: one more column of the bike check (repeatable)")
    ap.add_argument("--json", default=None, help="where the JSON goes (see the module docstring)")
    args = ap.parse_args(argv)
    if args.json is None:
        name = "harm_checks_candidates.json" if args.checkpoint else "harm_checks.json"
        args.json = str(ROOT / "benchmarks/results" / name)
    missing = [c for c in args.checkpoint if not Path(c).is_file()]
    if missing:
        raise SystemExit(f"no checkpoint file {missing[0]}")
    data = Path(os.environ.get("SAM_SR_DATA", "")).expanduser()
    if not (data / "sod").is_dir():
        raise SystemExit("set SAM_SR_DATA to the data folder (with sod/, wild/ and highres/)")
    checks = {"bike": lambda d: bike(d, tuple(args.checkpoint)), "reencode": lambda d: reencode(d, args.photos, args.regions), "aeroplane": aeroplane}
    wanted = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in checks]
    if unknown:
        raise SystemExit(f"unknown checks {unknown}: choose from {sorted(checks)}")
    res = {"date": time.strftime("%Y-%m-%d"), **{c: checks[c](data) for c in wanted}}
    if "reencode" in res:
        res["reencode_regions"] = args.regions
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    print(report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
