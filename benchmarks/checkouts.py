"""Benchmark: one change's speed, as two checkouts of sam-sr run alternately in fresh processes.

    git worktree add ../sam-sr-before <commit before the change>
    SAM_SR_DATA=/path/to/data python benchmarks/checkouts.py --before ../sam-sr-before [--after .] [--reps 3]

Each repetition runs, from each checkout in turn (``python -m sam_sr`` with the checkout as the working
directory, so that its own ``sam_sr`` package is imported; this interpreter and its installed
libraries for both), ``sam-sr infer`` on a folder of the first ``--photos`` sod evaluation photos (DSS
coarse masks) and on the aeroplane (3492 x 2328), for the default and ``--variant crm``. Alternating
the checkouts spreads the machine's drift over both. Prints the median of each row, per photo for the
folder (start-up included), with its peak RSS, the after/before ratio, and the share of the
aeroplane's pixels whose refined masks differ; writes ``benchmarks/results/checkouts.json`` (or
``--json``). Used for the batch-norm folding and the patched fusion's row resampling
(docs/BENCHMARKS.md). CPU only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402 - the fresh-process runner and the sod folder of benchmarks/speed.py

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"default": [], "crm": ["--variant", "crm"]}


def summarise(runs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Medians per row and checkout, and the after/before ratio: ``{row: {"before", "after", "ratio"}}``.
    ``runs``: ``{checkout: {row: [values]}}`` with checkouts ``before`` and ``after``."""
    out = {}
    for row in runs["before"]:
        b, a = statistics.median(runs["before"][row]), statistics.median(runs["after"][row])
        out[row] = {"before": b, "after": a, "ratio": a / b if b else float("nan")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="checkout (folder) of the commit before the change")
    ap.add_argument("--after", default=str(ROOT), help="checkout with the change (default: this one)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/checkouts.json"))
    args = ap.parse_args(argv)
    data = Path(os.environ.get("SAM_SR_DATA", "")).expanduser()
    if not (data / "sod").is_dir() or not (data / "highres").is_dir():
        raise SystemExit("set SAM_SR_DATA to the data folder (with sod/ and highres/)")
    checkouts = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    for name, p in checkouts.items():
        if not (p / "sam_sr" / "__init__.py").is_file():
            raise SystemExit(f"--{name} {p} is not a sam-sr checkout (no sam_sr/__init__.py)")
    plane, plane_mask = data / "highres/aeroplane.jpg", data / "highres/aeroplane_coarse.png"
    runs: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        img, msk = speed.folder(args.photos, data, tmp)
        try:
            for rep in range(args.reps):
                for tag, cwd in checkouts.items():
                    os.chdir(cwd)
                    for v, extra in VARIANTS.items():
                        r = speed.run(speed.SAM_SR + ["infer", "--images", str(img), "--masks", str(msk),
                                                      "--out", str(tmp / f"f{rep}{tag}{v}")] + extra)
                        runs[tag].setdefault(f"folder, {v}, s per photo", []).append(r["wall_s"] / args.photos)
                        out = tmp / f"a_{tag}_{v}.png"
                        r = speed.run(speed.SAM_SR + ["infer", str(plane), str(plane_mask), "--out", str(out),
                                                      "--force"] + extra)
                        runs[tag].setdefault(f"aeroplane, {v}, s", []).append(r["wall_s"])
                        runs[tag].setdefault(f"aeroplane, {v}, peak GiB", []).append(r["peak_rss"] / 2 ** 30)
        finally:
            os.chdir(here)
        from sam_sr.imaging import read_mask
        differ = {v: float(((read_mask(tmp / f"a_before_{v}.png") > 0.5) != (read_mask(tmp / f"a_after_{v}.png") > 0.5)).mean())
                  for v in VARIANTS}
    rows = summarise(runs)
    lines = ["| row | before | after | after / before |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['before']:.3f} | {v['after']:.3f} | {v['ratio']:.3f} |" for k, v in rows.items()]
    lines += [f"| aeroplane, {v}: pixels that differ | | {d:.2e} | |" for v, d in differ.items()]
    print("\n".join(lines))
    res = {"reps": args.reps, "photos": args.photos, "rows": rows, "runs": runs, "aeroplane_differ": differ}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
