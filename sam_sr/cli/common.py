"""Options shared by the commands that refine: the model, SAM, the device and the cascade settings."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SamSrError
from ..paths import DATA_ENV, data_path
from . import argtypes


def names(text: str, known, what: str) -> list[str]:
    """Comma-separated names from ``text``; raises :class:`SamSrError` naming any not in ``known``."""
    out = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in out if c not in known]
    if unknown:
        raise SamSrError(f"unknown {what} {unknown}; known: {list(known)}")
    return out


def plain_args(args: argparse.Namespace) -> dict:
    """The parsed options as plain values (for JSON reports)."""
    return {k: v for k, v in vars(args).items() if not callable(v)}


def data_or(given: str | None, rel: str, option: str) -> Path:
    """``given``, else ``$SAM_SR_DATA/rel``; the error names ``option`` when neither is set."""
    if given:
        return Path(given)
    try:
        return data_path(rel)
    except SamSrError:
        raise SamSrError(f"give {option}, or set {DATA_ENV} to the data folder (the default is "
                         f"${DATA_ENV}/{rel})") from None


#: The cascade settings on the command line: (option, type name in :mod:`.argtypes`, what it sets, the
#: default when neither the option nor the model gives one). Unset options keep the model's
#: recommended ``inference`` settings (stored in its checkpoint), else :class:`CascadeConfig`'s.
CASCADE_OPTIONS = (
    ("scales", "scales", "cascade scales in (0, 1], comma-separated", "0.125,0.25,0.5,1"),
    ("min-size", "count", "skip cascade scales whose longer side is below this many pixels", "512"),
    ("decode", "decode_mode", "query selection: full, bbox[:PAD], contour[:WIDTH], strided:N, hierarchical[:N]; "
                              "a mode the checkpoint was not trained for is refused", "full"),
    ("margin", "margin", "confidence margin in [0, 0.5): refined probabilities within it of 0.5 keep the "
                         "coarse mask's value", "0 = off"),
    ("upsample-to", "count", "refine images whose longer side is below this many pixels at this size and "
                             "resize the result back", "0 = off"),
    ("fusion-patches", "count", "run the fusion convolutions in N bands (exact, less memory; 0 = off)", "8"),
    ("encoder-tile", "encoder_tile", "encode inputs larger than this many pixels in overlapping tiles "
                                     "(above twice the tiles' 64 px context)", "0 = off"),
    ("sparse-tile", "sparse_tile", "at steps whose decoded pixels are known first (contour, bbox), encode only "
                                   "the tiles of this many px they read (a multiple of 8; exact; 0 = whole inputs)",
     "64"),
)


def add_model_args(ap: argparse.ArgumentParser) -> None:
    """The options that choose and run a model, in three groups of ``--help``: model (--checkpoint,
    --variant, --device, --mask-threshold), SAM (--sam-type, --sam-checkpoint, --points-per-side,
    --sam-cache) and speed (the cascade settings, :data:`CASCADE_OPTIONS`)."""
    from ..variants import available_variants
    model = ap.add_argument_group("model")
    model.add_argument("--checkpoint", help="sam-sr checkpoint (default: the model shipped in the package)")
    model.add_argument("--variant", default=None,
                       help=f"run the checkpoint as this variant: {', '.join(available_variants())} "
                            f"(v1 also runs a crm checkpoint, with SAM's union as its input)")
    model.add_argument("--device", type=argtypes.device, default=None,
                       help="torch device: cpu, cuda, cuda:N, mps (default: cuda if available, else cpu; in a "
                            "data-parallel run, each process's own GPU)")
    model.add_argument("--mask-threshold", type=argtypes.float_in(0, 1, True, True), default=None,
                       help="binarise coarse masks at this value in (0, 1) before refining (default: binary "
                            "masks stay binary, soft masks are refined as they are)")
    model.add_argument("--regions", choices=("auto", "keep"), default="auto",
                       help="auto (default): the model's region step fixes wrong regions where its decision "
                            "trusts it; keep: the coarse mask's regions are kept whole and only its boundary "
                            "is refined, for masks that are right but for their edges (SAM is not run: "
                            "faster, and a right mask is never changed beyond its boundary)")
    sam = ap.add_argument_group("SAM (the default model and the SAM-SR variants)")
    sam.add_argument("--sam-type", default=None, help="SAM type (vit_t = MobileSAM, vit_b/vit_l/vit_h; "
                                                      "default vit_t)")
    sam.add_argument("--sam-checkpoint", default=None,
                     help="SAM checkpoint (default: the MobileSAM bundled with sam-sr)")
    sam.add_argument("--points-per-side", type=argtypes.positive_int, default=16,
                     help="SAM automatic-mask point grid for v1 / v2.1 (SAM's default 32; 16 or less on CPU)")
    sam.add_argument("--sam-cache", default=None,
                     help="folder of cached SAM outputs (sam-sr precompute-sam); read and filled")
    speed = ap.add_argument_group("speed and the cascade (default: the model's recommended settings)")
    margin = argtypes.float_in(0, 0.5, high_open=True)
    for option, kind, what, fallback in CASCADE_OPTIONS:
        speed.add_argument(f"--{option}", type=margin if kind == "margin" else getattr(argtypes, kind), default=None,
                           help=f"{what} (default: the model's, else {fallback})")
    speed.add_argument("--allow-any-decode", action="store_true",
                       help="run a --decode mode the checkpoint was not trained for anyway (with a warning)")
    speed.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                       help="test-time augmentation: also refine the mirrored image and average (2x time; "
                            "default: the model's, else off)")
    speed.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                       help="precision of the encoders (the cascade's and SAM's): bf16 autocast is faster "
                            "where the device computes bfloat16 natively (GPUs, CPUs with AVX-512 BF16 or AMX) "
                            "and close to, not equal to, fp32; default auto: bf16 where native, else fp32 "
                            "($SAM_SR_PRECISION sets the default)")
    speed.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                       help="run the networks with torch (default) or with onnxruntime on the CPU (pip install "
                            "'sam-sr[onnx]'; the model is exported once, or read from --onnx-dir)")
    speed.add_argument("--onnx-dir", default=None,
                       help="folder of the model's ONNX export (sam-sr export --onnx DIR); default: a cache folder")


def cascade_settings(args) -> dict:
    """The cascade settings given on the command line (validated by :class:`CascadeConfig`)."""
    cascade = {}
    for name in ("scales", "decode", "margin", "flip", "min_size", "upsample_to", "fusion_patches",
                 "encoder_tile", "sparse_tile", "precision"):
        if getattr(args, name) is not None:
            cascade[name] = getattr(args, name)
    return cascade


def sam_cache_folder(path: str | None, option: str = "--sam-cache") -> Path | None:
    """``path`` as the SAM cache folder (created when first written).

    Raises:
        SamSrError: ``path`` (or a parent of it) is a file, or the folder cannot be written.
    """
    if not path:
        return None
    from ..imaging.outputs import check_output_folder
    return check_output_folder(path, option)


def refiner_from_args(args, device=None):
    """A :class:`sam_sr.Refiner` from :func:`add_model_args`'s options (``device``: used when
    ``--device`` is not given, e.g. a data-parallel process's own GPU)."""
    from ..inference import Refiner
    if getattr(args, "regions", "auto") == "keep":
        given = [f"--{n.replace('_', '-')}" for n in ("sam_type", "sam_checkpoint", "sam_cache")
                 if getattr(args, n, None)]
        if given:
            raise SamSrError(f"{', '.join(given)} cannot be used with --regions keep (SAM is not run)")
    cache = None
    folder = sam_cache_folder(args.sam_cache)
    if folder is not None:   # keyed by the SAM checkpoint: the given one, else the bundled MobileSAM
        from ..sam.cache import SamCache, model_tag
        from ..sam.loader import BUNDLED_SAM
        cache = SamCache(folder, model_tag(args.sam_type or "vit_t", args.sam_checkpoint or BUNDLED_SAM))
    return Refiner.from_checkpoint(args.checkpoint, variant=args.variant, device=args.device or device,
                                   sam_type=args.sam_type, sam_checkpoint=args.sam_checkpoint,
                                   sam_cache=cache, sam_points_per_side=args.points_per_side,
                                   allow_any_decode=args.allow_any_decode, runtime=args.runtime,
                                   onnx_dir=args.onnx_dir, regions=getattr(args, "regions", "auto"),
                                   **cascade_settings(args))


def run_jobs(args, jobs: list, work, scratch_dir, merge=None):
    """Run a planned folder or COCO run over the processes of a data-parallel launch
    (:func:`sam_sr.batch.parallel.run_sharded`; one process under plain ``python``).

    Args:
        work: ``work(refiner, my_jobs, desc) -> summary``; the refiner is built from ``args`` on this
            process's device (its own GPU in a multi-GPU run) unless ``--device`` is given.
        scratch_dir: where the processes' part files go while they are merged (the output folder).

    Returns:
        The merged summary on the main process, None on the others.
    """
    from ..batch.parallel import process_device, process_state, run_sharded
    state = process_state(cpu=True if args.device and args.device.startswith("cpu") else None)
    refiner = refiner_from_args(args, device=process_device(state))
    return run_sharded(jobs, lambda js, desc: work(refiner, js, desc), None, merge, state,
                       scratch_dir=scratch_dir)


def write_run_report(args, summary: dict, write, what: str = "items") -> None:
    """``--report`` of a folder or COCO run: ``write()`` makes it, unless every one of the run's
    ``what`` failed, which says so on stderr instead of writing an empty page."""
    import sys
    if not args.report:
        return
    if summary["ok"] == 0:
        print(f"no report: every one of the {summary['total']} {what} failed (see the errors above)", file=sys.stderr)
        return
    write()
    print(f"wrote {args.report}")
