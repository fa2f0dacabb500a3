"""``sam-sr profile``, ``export``, ``figure`` and ``boundary-alignment``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import SamSrError
from . import argtypes
from .common import data_or, names, plain_args

PROFILE_HELP = "latency, peak memory and decoded points of inference settings on high-resolution photos"
PROFILE_DESCRIPTION = """Profile cascade settings, each configuration in a fresh process: median latency,
peak RSS (and CUDA memory), decoded query points, and IoU/mBA against full decoding. Default photo:
$SAM_SR_DATA/highres/aeroplane.jpg and its resizes to --sizes."""

EXPORT_HELP = "export a training checkpoint as an inference checkpoint (weights + recommended settings)"
EXPORT_DESCRIPTION = """Write SRC's weights, model config and training config to DST (never the
optimizer), with --decode/--min-size/--margin/--upsample-to/--flip stored as the model's recommended
inference settings, which Refiner.from_checkpoint and every command use unless told otherwise."""

FIGURE_HELP = "overlay figure: coarse, refined and ground-truth contours on photos (optional zoom panels)"
FIGURE_DESCRIPTION = """Overlay figure: coarse (red), refined (green) and ground-truth (blue) contours on
photos of a dataset in the generic layout (default $SAM_SR_DATA/sod). With --zoom PX each photo gets
a second panel: the PX x PX window where the refined mask differs from the coarse one in the most
pixels, pixel by pixel (green = fixed, red = broken, yellow = wrong in both)."""

ALIGN_HELP = "where each dataset's ground-truth boundaries sit relative to the image's edges"
ALIGN_DESCRIPTION = """Print, per dataset, the mean Sobel gradient magnitude of the photos at each signed
distance from the ground-truth boundary (pixels, negative inside). A peak inside the mask (-1, -2)
means the masks run beyond the object's edge. Default datasets: $SAM_SR_DATA/sod's training photos
(configs/splits/sod_train_fit.txt) and $SAM_SR_DATA/horse."""


def profile_arguments(ap: argparse.ArgumentParser) -> None:
    from ..reporting.profiling import BASELINES, CONFIGS
    ap.add_argument("--highres", default=None, help="folder with aeroplane.jpg (default: $SAM_SR_DATA/highres)")
    ap.add_argument("--image", help="profile this image instead (with --mask)")
    ap.add_argument("--mask")
    ap.add_argument("--sizes", type=argtypes.int_list, default="2048,3840,6000",
                    help="also resize the image to these long sides (2k/4k/6k); '' for none")
    ap.add_argument("--skip-native", action="store_true", help="profile only the resized copies")
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help=f"comma-separated from {list(CONFIGS)} and the peers {list(BASELINES)}")
    ap.add_argument("--runs", type=argtypes.positive_int, default=3, help="timed runs per configuration (median)")
    ap.add_argument("--warmup", type=argtypes.count, default=1, help="untimed runs first")
    ap.add_argument("--threads", type=argtypes.count, default=0, help="torch threads in each run (0 = default)")
    ap.add_argument("--checkpoint", help="sam-sr checkpoint (default: the shipped model)")
    ap.add_argument("--device", type=argtypes.device, default=None)
    ap.add_argument("--json", default="benchmarks/results/profile.json",
                    help="write rows here (replaced; its folder is checked before profiling)")


def profile_run(args) -> int:
    from ..evaluation.evaluate import write_json
    from ..imaging.outputs import check_output_path
    from ..reporting.profiling import BASELINES, CONFIGS, default_items, format_summary, format_table, profile
    configs = names(args.configs, {**CONFIGS, **BASELINES}, "configs")
    sizes = args.sizes
    if args.json:
        check_output_path(args.json, force=True)
    if args.image:
        if not args.mask:
            raise SamSrError("--image needs --mask")
        items = [{"name": Path(args.image).stem, "image": args.image, "mask": args.mask, "long_side": None}]
        items += [{**items[0], "name": f"{items[0]['name']}@{s}", "long_side": s} for s in sizes]
    else:
        highres = data_or(args.highres, "highres", "--highres (or --image and --mask)")
        if not (highres / "aeroplane.jpg").is_file():
            raise SamSrError(f"{highres}/aeroplane.jpg not found; pass --image and --mask")
        items = default_items(highres, sizes)
    if args.skip_native:
        items = [it for it in items if it["long_side"] is not None]
        if not items:
            raise SamSrError("--skip-native needs --sizes")
    for it in items:
        for key in ("image", "mask"):
            if not Path(it[key]).is_file():
                raise SamSrError(f"{key} not found: {it[key]}")
    rows = profile(items, configs, args.checkpoint, args.device, args.runs, args.warmup, args.threads)
    print(format_table(rows))
    summary = format_summary(rows)
    if summary:
        print(summary)
    if args.json:
        import platform
        write_json(args.json, {"args": plain_args(args), "rows": rows,
                               "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
                                           "platform": platform.platform()}})
        print(f"wrote {args.json}")
    return 0


def export_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("src", nargs="?", default=None,
                    help="training checkpoint, e.g. runs/crm_r18_pixel_sod2/final.pt (with --onnx alone: "
                         "default the shipped default model)")
    ap.add_argument("dst", nargs="?", default=None, help="inference checkpoint to write")
    ap.add_argument("--onnx", default=None, metavar="DIR",
                    help="also (or only) write the networks as ONNX files into DIR, for --runtime onnx "
                         "(needs pip install 'sam-sr[onnx]')")
    ap.add_argument("--force", action="store_true", help="overwrite DST (and an ONNX export in DIR)")
    ap.add_argument("--decode", type=argtypes.decode_mode, default=None,
                    help="recommended query selection, e.g. contour:8")
    ap.add_argument("--valid-decode", default=None,
                    help="the decode modes the model was trained for, comma-separated names (e.g. contour); "
                         "others are refused at inference unless --allow-any-decode (default: the source's "
                         "declaration, else the recommended mode only)")
    ap.add_argument("--min-size", type=argtypes.count, default=None, help="recommended cascade min_size (px)")
    ap.add_argument("--margin", type=argtypes.float_in(0, 0.5, high_open=True), default=None,
                    help="recommended confidence margin")
    ap.add_argument("--upsample-to", type=argtypes.count, default=None, help="recommended upsample_to (px)")
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="recommended test-time mirror averaging")
    ap.add_argument("--boundary-from", default=None, metavar="CRM",
                    help="instead: write SRC, a v4 or v5 checkpoint, with its boundary step's weights taken "
                         "from the crm checkpoint CRM (SRC's inference settings kept)")
    ap.add_argument("--decision", action="append", type=argtypes.key_number, default=None, metavar="KEY=NUMBER",
                    help="instead (or with --boundary-from): write SRC, a v5 checkpoint, with this "
                         "keep-or-change decision setting changed, e.g. opens=1.01, big_add=0.5 "
                         "(additions of half the coarse mask or more need strong evidence) or passes=3 (up "
                         "to 3 region passes, each over the last one's result) (repeatable)")


def export_run(args) -> int:
    from ..errors import SamSrError
    if args.dst is None and args.onnx is None:
        raise SamSrError("give DST (an inference checkpoint to write) and/or --onnx DIR")
    if args.dst is not None and args.src is None:
        raise SamSrError("give SRC, the training checkpoint to export")
    if args.boundary_from is not None or args.decision:
        settings = ("decode", "min_size", "margin", "upsample_to", "flip", "valid_decode")
        if args.dst is None or any(getattr(args, k) is not None for k in settings):
            raise SamSrError("--boundary-from and --decision need SRC and DST, and keep SRC's inference settings "
                             "(no --decode, --min-size, --margin, --upsample-to, --flip, --valid-decode)")
        from ..checkpoint import replace_boundary
        decision = dict(args.decision or [])
        out = replace_boundary(args.src, args.boundary_from, args.dst, args.force, decision)
        what = [f"the boundary step of {args.boundary_from}"] if args.boundary_from else []
        what += [f"decision {k}={out['decision_set'][k]}" for k in decision]   # as the config reads it
        print(f"wrote {args.dst}: {out['variant']} with {', '.join(what)}")
    elif args.dst is not None:
        from ..training.export import export_checkpoint
        given = {"decode": args.decode, "min_size": args.min_size, "margin": args.margin,
                 "upsample_to": args.upsample_to, "flip": args.flip, "valid_decode": args.valid_decode}
        out = export_checkpoint(args.src, args.dst, {k: v for k, v in given.items() if v is not None}, args.force)
        print(f"wrote {args.dst}: {out['variant']} at iteration {out['iteration']}, {out['bytes'] / 1e6:.1f} MB")
    if args.onnx is not None:
        from ..inference import Refiner
        from ..inference.onnx_runtime import export_onnx
        src = args.dst or args.src
        r = Refiner.from_checkpoint(src, device="cpu", allow_any_decode=True)
        sam = getattr(r.sam_inputs, "source", None)
        manifest = export_onnx(r.model, args.onnx, r.info["checkpoint"], getattr(sam, "sam", None), args.force)
        print(f"wrote {args.onnx}: {', '.join(manifest['files'].values())} (largest difference from torch "
              f"{max(manifest['max_abs_diff'].values()):.2g})"
              + (f"; SAM's encoder {manifest['sam_encoder_note']}" if manifest["sam_encoder_note"] else ""))
    return 0


def figure_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--root", default=None, help="dataset folder (default: $SAM_SR_DATA/sod)")
    ap.add_argument("--ids", default=None, help="comma-separated image ids")
    ap.add_argument("--example", action="store_true", help="instead: the bundled example's before/after "
                    "(coarse, --variant crm, the default), whole and zoomed")
    ap.add_argument("--source", default="dss", help="coarse source folder under <root>/coarse, or scale_gap_xK, blocky_xK, gt")
    ap.add_argument("--checkpoint", default=None, help="sam-sr checkpoint (default: the shipped model)")
    ap.add_argument("--height", type=argtypes.positive_int, default=240, help="panel height in pixels")
    ap.add_argument("--zoom", type=argtypes.count, default=0, help="add a pixel-level panel of this window size (px)")
    ap.add_argument("--out", required=True, help="output PNG")
    ap.add_argument("--force", action="store_true", help="overwrite --out")


#: The zoomed window of ``sam-sr figure --example`` (y0, x0, y1, x1): the saucer's upper-left rim,
#: which the example's coarse mask misses.
EXAMPLE_WINDOW = (40, 60, 260, 280)


def figure_run(args) -> int:
    from ..data import load_samples
    from ..imaging.outputs import check_output_path, check_outputs
    from ..imaging.read import read_image, read_mask
    from ..imaging.write import write_png
    from ..inference import Refiner
    from ..reporting.figures import example_figure, refinement_figure
    check_output_path(args.out, args.force)
    if args.example:
        from ..inference.predictor import prepare_mask
        from .infer import EXAMPLE_IMAGE, EXAMPLE_MASK
        assets = Path(__file__).resolve().parent.parent / "assets"
        image = read_image(assets / EXAMPLE_IMAGE)
        coarse = prepare_mask(read_mask(assets / EXAMPLE_MASK), image.shape[:2]) >= 0.5
        ours = Refiner.from_checkpoint(args.checkpoint)
        label = f"default ({ours.info['variant']})" if args.checkpoint is None else ours.info["variant"]
        outs = {"CRM band refiner (--variant crm)": Refiner.from_checkpoint(variant="crm").refine(image, coarse) > 0,
                label: ours.refine(image, coarse) > 0}
        write_png(args.out, example_figure(image, coarse, outs, EXAMPLE_WINDOW, args.height))
        print(f"wrote {args.out}")
        return 0
    if not args.ids:
        raise SamSrError("give --ids (or --example)")
    root = data_or(args.root, "sod", "--root")
    wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
    samples = {s.id: s for s in load_samples({"layout": "generic", "root": root})}
    missing = [i for i in wanted if i not in samples]
    if missing:
        raise SamSrError(f"no samples {missing} in {root}")
    inputs = {"--checkpoint": args.checkpoint}
    for i in wanted:                   # --out may not be a photo or mask it draws (even with --force)
        s = samples[i]
        inputs.update({f"photo {i}": s.image, f"mask {i}": s.mask,
                       **{f"coarse mask {i} ({k})": v for k, v in s.coarse.items()}})
    check_outputs(inputs, {"--out": args.out}, args.force, images=("--out",))
    figure = refinement_figure(Refiner.from_checkpoint(args.checkpoint), [samples[i] for i in wanted],
                               args.source, args.height, args.zoom)
    write_png(args.out, figure)
    print(f"wrote {args.out}")
    return 0


def alignment_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--dataset", action="append", help="ROOT or ROOT:IDS_FILE (repeatable; default: "
                                                       "sod's training photos and horse)")
    ap.add_argument("--max-distance", type=argtypes.positive_int, default=4, help="report distances -D..-1, 1..D px")
    ap.add_argument("--json", default=None, help="also write the profiles here")
    ap.add_argument("--force", action="store_true", help="overwrite --json")


def alignment_run(args) -> int:
    from ..evaluation.alignment import dataset_profiles, format_profiles
    from ..evaluation.evaluate import write_json
    from ..imaging.outputs import check_output_path
    if args.json:
        check_output_path(args.json, args.force)
    specs = args.dataset
    if not specs:
        specs = [f"{data_or(None, 'sod', '--dataset')}:configs/splits/sod_train_fit.txt",
                 str(data_or(None, 'horse', '--dataset'))]
    results = dataset_profiles(specs, args.max_distance)
    print(format_profiles(results), end="")
    if args.json:
        write_json(args.json, results)
    return 0
