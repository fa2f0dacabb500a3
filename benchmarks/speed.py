"""Benchmark: speed at every size, in one run, against baselines measured in the same run.

    SAM_SR_DATA=/path/to/data python benchmarks/speed.py [--photos 20] [--sod-photos 80] [--quick]

Measures, each command in a fresh process unless said otherwise (wall time includes start-up):

- ``sam-sr --help`` (median of 5) against ``python -c pass``;
- a folder run of the first ``--photos`` sod evaluation photos (DSS coarse masks), per photo: the
  default (``--precision auto``: bf16 where the CPU computes it natively), the default in fp32
  (``SAM_SR_PRECISION=fp32``), ``--variant crm``, and CascadePSP's pip package (``segmentation-refinement`` 0.6,
  ``refine(fast=False, L=900)``, random weights: its weights download at run time) when it is
  installed; with the kernel's share of the CPU time (user + system, from ``getrusage``), with glibc's
  allocator tuned (the default: mallopt), with transparent huge pages as well (``SAM_SR_HUGE_PAGES=1``)
  and with ``SAM_SR_TUNE_MALLOC=0`` (neither);
- the aeroplane (3492 x 2328) one photo per process: time and peak RSS, the default (also in fp32 and with
  huge pages; each the median of 3 runs) and CascadePSP (one run);
- the default at 2048 x 1365 and 6000 x 4000 (the aeroplane resized; median of 3 runs): the time ratio;
- ``crm-full`` in one warm process: ``full``, ``strided:4`` and ``hierarchical`` on the aeroplane and
  the sod evaluation photos: speed-up over ``full`` and agreement (IoU of the binary masks) with it;
- torch (fp32, as onnxruntime computes) against onnxruntime (``--runtime onnx``) in one warm process:
  the default and ``crm`` on the sod photos and the aeroplane.

Prints the tables and writes ``benchmarks/results/speed.json`` (replaced). No GPU is used.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAM_SR = [sys.executable, "-m", "sam_sr"]


def run(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh process: wall s, user s, system s and peak RSS (bytes) of that process and
    its children (``os.wait4``'s usage for this one child: not the largest of every earlier child)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "peak_rss": usage.ru_maxrss * 1024}


PSP_FOLDER = """
import sys, types, time, os, tempfile, numpy as np, torch
sys.modules.setdefault("requests", types.ModuleType("requests"))
import segmentation_refinement as sr
from segmentation_refinement.models.psp.pspnet import RefinementModule
from sam_sr.imaging import read_image, read_mask, write_mask
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    torch.save({f"module.{k}": v for k, v in RefinementModule().state_dict().items()}, os.path.join(tmp, "model"))
    r = sr.Refiner(device="cpu", model_folder=tmp, download_and_check_model=False)
images, masks, out = sys.argv[1:4]
for name in sorted(os.listdir(images)):
    stem = os.path.splitext(name)[0]
    img, m = read_image(os.path.join(images, name)), read_mask(os.path.join(masks, stem + ".png"))
    o = r.refine(img, ((m >= 0.5) * 255).astype(np.uint8), fast=False, L=900)
    write_mask(os.path.join(out, stem + ".png"), ((o >= 128) * 255).astype(np.uint8))
"""


def sod_eval_ids() -> list[str]:
    from sam_sr.data.datasets import read_ids
    return read_ids(ROOT / "configs/splits/sod_eval.txt")


def have_cascadepsp() -> bool:
    p = subprocess.run([sys.executable, "-c", "import sys, types; sys.modules.setdefault('requests', "
                        "types.ModuleType('requests')); import segmentation_refinement"], capture_output=True)
    return p.returncode == 0


def folder(n: int, data: Path, tmp: Path) -> tuple[Path, Path]:
    ids = sod_eval_ids()[:n]
    img, msk = tmp / "images", tmp / "masks"
    img.mkdir()
    msk.mkdir()
    for i in ids:
        os.symlink(data / "sod" / "images" / f"{i}.jpg", img / f"{i}.jpg")
        os.symlink(data / "sod" / "coarse" / "dss" / f"{i}.png", msk / f"{i}.png")
    return img, msk


def median_run(cmd: list[str], env: dict | None = None, k: int = 3) -> dict:
    """``run(cmd)`` ``k`` times; the run with the median wall time (one slow start, e.g. a cold file
    cache, does not decide a row)."""
    runs = sorted((run(cmd, env) for _ in range(k)), key=lambda r: r["wall_s"])
    return {**runs[k // 2], "runs": k}


def median_of(cmd, k=5):
    return median_run(cmd, k=k)["wall_s"]


def warm_decode(data: Path, n_sod: int) -> dict:
    """crm-full's decode modes in one warm process (sam_sr imported here)."""
    from sam_sr import Refiner
    from sam_sr.evaluation.metrics import iou
    from sam_sr.imaging import read_image, read_mask
    ids = sod_eval_ids()[:n_sod]
    sets = {"aeroplane": [(data / "highres/aeroplane.jpg", data / "highres/aeroplane_coarse.png")],
            "sod": [(data / f"sod/images/{i}.jpg", data / f"sod/coarse/dss/{i}.png") for i in ids]}
    modes = {"full": "full", "strided:4": "strided:4", "hierarchical": "hierarchical:4"}
    out = {}
    for name, items in sets.items():
        refs = {m: Refiner.from_checkpoint(variant="crm-full", device="cpu", decode=d) for m, d in modes.items()}
        times = {m: 0.0 for m in modes}
        agree = {m: [] for m in modes}
        first = read_image(items[0][0]), read_mask(items[0][1]) >= 0.5
        for r in refs.values():
            r.refine(*first)                          # warm-up
        for im, mk in items:
            img, msk = read_image(im), read_mask(mk) >= 0.5
            res = {}
            for m, r in refs.items():
                t = time.perf_counter()
                res[m] = r.refine(img, msk) > 0
                times[m] += time.perf_counter() - t
            for m in modes:
                agree[m].append(100 * iou(res[m], res["full"]))
        out[name] = {m: {"time_s": times[m], "speedup": times["full"] / times[m], "agreement_mean": float(np.mean(agree[m])),
                         "agreement_min": float(np.min(agree[m])), "photos": len(items)} for m in modes}
    return out


def warm_runtime(data: Path, n_sod: int) -> dict:
    """torch against onnxruntime in one warm process."""
    from sam_sr import Refiner
    from sam_sr.imaging import read_image, read_mask
    ids = sod_eval_ids()[:n_sod]
    sets = {"sod": [(data / f"sod/images/{i}.jpg", data / f"sod/coarse/dss/{i}.png") for i in ids],
            "aeroplane": [(data / "highres/aeroplane.jpg", data / "highres/aeroplane_coarse.png")]}
    out = {}
    for variant in ("default", "crm"):
        v = None if variant == "default" else variant
        rs = {"torch": Refiner.from_checkpoint(device="cpu", variant=v, precision="fp32"),   # onnxruntime's float32
              "onnx": Refiner.from_checkpoint(device="cpu", variant=v, runtime="onnx")}
        for name, items in sets.items():
            row = {}
            for rt, r in rs.items():
                img, msk = read_image(items[0][0]), read_mask(items[0][1])
                r.refine(img, msk)                    # warm-up
                total = 0.0
                for im, mk in items:
                    img, msk = read_image(im), read_mask(mk)
                    src = getattr(r.sam_inputs, "source", None)
                    if src is not None:
                        src.forget_image()           # SAM encodes every photo, as for a new one
                    t = time.perf_counter()
                    row.setdefault("outs_" + rt, []).append(r.predict(img, msk).soft)
                    total += time.perf_counter() - t
                row[rt] = total / len(items)
            row["max_soft_diff"] = float(max(np.abs(a - b).max() for a, b in zip(row.pop("outs_torch"), row.pop("outs_onnx"))))
            row["speedup"] = row["torch"] / row["onnx"]
            out[f"{variant}/{name}"] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=20, help="sod photos in the folder runs")
    ap.add_argument("--sod-photos", type=int, default=80, help="sod photos for the decode modes and runtimes")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 3 photos, 2k/3k sizes")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/speed.json"))
    args = ap.parse_args(argv)
    data = Path(os.environ.get("SAM_SR_DATA", "")).expanduser()
    if not (data / "sod").is_dir():
        raise SystemExit("set SAM_SR_DATA to the data folder (with sod/ and highres/)")
    if args.quick:
        args.photos, args.sod_photos = 3, 3
    sizes = (1200, 2400) if args.quick else (2048, 6000)
    res: dict = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}, "date": time.strftime("%Y-%m-%d")}
    psp = have_cascadepsp()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        res["help"] = {"sam-sr --help": median_of(SAM_SR + ["--help"]),
                       "python -c pass": median_of([sys.executable, "-c", "pass"])}
        img, msk = folder(args.photos, data, tmp)
        runs = {}
        for name, extra, env in (("default", [], {}), ("default, fp32", [], {"SAM_SR_PRECISION": "fp32"}),
                                 ("default, huge pages", [], {"SAM_SR_HUGE_PAGES": "1"}),
                                 ("default, glibc defaults", [], {"SAM_SR_TUNE_MALLOC": "0"}),
                                 ("crm", ["--variant", "crm"], {})):
            out = tmp / f"out_{len(runs)}"
            r = run(SAM_SR + ["infer", "--images", str(img), "--masks", str(msk), "--out", str(out)] + extra, env)
            r["per_photo_s"] = r["wall_s"] / args.photos
            r["kernel_share"] = r["sys_s"] / (r["user_s"] + r["sys_s"])
            runs[name] = r
        if psp:
            out = tmp / "out_psp"
            out.mkdir()
            r = run([sys.executable, "-c", PSP_FOLDER, str(img), str(msk), str(out)])
            r["per_photo_s"] = r["wall_s"] / args.photos
            r["kernel_share"] = r["sys_s"] / (r["user_s"] + r["sys_s"])
            runs["cascadepsp"] = r
        res["folder"] = runs
        a_img, a_msk = data / "highres/aeroplane.jpg", data / "highres/aeroplane_coarse.png"
        a_cmd = SAM_SR + ["infer", str(a_img), str(a_msk), "--out", str(tmp / "a.png"), "--force"]
        aero = {"default": median_run(a_cmd),
                "default, fp32": median_run(a_cmd, {"SAM_SR_PRECISION": "fp32"}),
                "default, huge pages": median_run(a_cmd, {"SAM_SR_HUGE_PAGES": "1"})}
        if psp:
            out = tmp / "psp_a"
            out.mkdir()
            (tmp / "ai").mkdir()
            (tmp / "am").mkdir()
            os.symlink(a_img, tmp / "ai/aeroplane.jpg")
            os.symlink(a_msk, tmp / "am/aeroplane.png")
            aero["cascadepsp"] = run([sys.executable, "-c", PSP_FOLDER, str(tmp / "ai"), str(tmp / "am"), str(out)])
        res["aeroplane"] = aero
        import cv2
        big = cv2.imread(str(a_img))
        bm = cv2.imread(str(a_msk), cv2.IMREAD_GRAYSCALE)
        scaling = {}
        for side in sizes:
            h = round(side * big.shape[0] / big.shape[1])
            cv2.imwrite(str(tmp / f"s{side}.png"), cv2.resize(big, (side, h), interpolation=cv2.INTER_AREA))
            cv2.imwrite(str(tmp / f"s{side}_m.png"), cv2.resize(bm, (side, h), interpolation=cv2.INTER_NEAREST))
            scaling[f"{side}x{h}"] = median_run(SAM_SR + ["infer", str(tmp / f"s{side}.png"), str(tmp / f"s{side}_m.png"),
                                                   "--out", str(tmp / f"s{side}_o.png"), "--force"])
        res["scaling"] = scaling
        shutil.rmtree(tmp / "images", ignore_errors=True)
    res["decode_modes"] = warm_decode(data, args.sod_photos)
    res["runtime"] = warm_runtime(data, min(args.sod_photos, 20))
    res["cascadepsp_installed"] = psp
    res["gpu"] = "no GPU was lent to this run: see benchmarks/gpu_profile.py"
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    print(report(res))
    return 0


def report(res: dict) -> str:
    f, a = res["folder"], res["aeroplane"]
    psp = "cascadepsp" in f
    gib = 2 ** 30
    lines = [f"## speed ({res['date']}, {res['machine']['cpus']} CPUs)", "",
             "| what | value | against |", "|---|---|---|",
             f"| `sam-sr --help` | {res['help']['sam-sr --help']:.2f} s | python -c pass {res['help']['python -c pass']:.2f} s |"]
    for k, r in f.items():
        vs = []
        if k != "crm" and "crm" in f:
            vs.append(f"{r['per_photo_s'] / f['crm']['per_photo_s']:.2f}x crm")
        if psp and k != "cascadepsp":
            vs.append(f"{r['per_photo_s'] / f['cascadepsp']['per_photo_s']:.3f}x CascadePSP")
        lines.append(f"| folder, per photo: {k} | {r['per_photo_s']:.2f} s (kernel {100 * r['kernel_share']:.1f}% "
                     f"of CPU time) | {', '.join(vs)} |")
    d = a["default"]
    vs = ""
    if "cascadepsp" in a:
        p = a["cascadepsp"]
        vs = (f"CascadePSP {p['wall_s']:.2f} s, {p['peak_rss'] / gib:.2f} GiB: {d['wall_s'] / p['wall_s']:.2f}x time, "
              f"{d['peak_rss'] / p['peak_rss']:.2f}x memory")
    lines.append(f"| aeroplane 3492x2328, default | {d['wall_s']:.2f} s, {d['peak_rss'] / gib:.2f} GiB | {vs} |")
    for k in ("default, fp32", "default, huge pages"):
        if k in a:
            h = a[k]
            lines.append(f"| aeroplane 3492x2328, {k} | {h['wall_s']:.2f} s, {h['peak_rss'] / gib:.2f} GiB "
                         f"| {h['wall_s'] / d['wall_s']:.2f}x the default's time |")
    sc = list(res["scaling"].items())
    lines.append(f"| {sc[1][0]} over {sc[0][0]}, time | {sc[1][1]['wall_s'] / sc[0][1]['wall_s']:.2f} "
                 f"({sc[0][1]['wall_s']:.2f} s, {sc[1][1]['wall_s']:.2f} s) | |")
    lines += ["", "| crm-full | photos | full s | strided:4 speed-up / agreement (mean, min) | hierarchical speed-up / "
              "agreement (mean, min) |", "|---|---|---|---|---|"]
    for name, m in res["decode_modes"].items():
        s, h = m["strided:4"], m["hierarchical"]
        lines.append(f"| {name} | {m['full']['photos']} | {m['full']['time_s']:.1f} | {s['speedup']:.2f}x / "
                     f"{s['agreement_mean']:.2f}%, {s['agreement_min']:.2f}% | {h['speedup']:.2f}x / "
                     f"{h['agreement_mean']:.2f}%, {h['agreement_min']:.2f}% |")
    lines += ["", "| runtime | torch s per photo | onnxruntime s per photo | speed-up | largest soft difference |",
              "|---|---|---|---|---|"]
    for name, r in res["runtime"].items():
        lines.append(f"| {name} | {r['torch']:.2f} | {r['onnx']:.2f} | {r['speedup']:.2f}x | {r['max_soft_diff']:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
