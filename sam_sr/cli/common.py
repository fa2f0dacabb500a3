"""Options shared by the commands that refine: the model, SAM, the device and the cascade settings."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SamSrError
from ..paths import DATA_ENV, data_path


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


def add_model_args(ap: argparse.ArgumentParser) -> None:
    """--checkpoint, --variant, SAM options, --device and the cascade settings."""
    from ..variants import available_variants
    ap.add_argument("--checkpoint", help="sam-sr checkpoint (default: the model shipped in the package)")
    ap.add_argument("--variant", default=None,
                    help=f"run the checkpoint as this variant: {', '.join(available_variants())} "
                         f"(v1 also runs a crm checkpoint, with SAM's union as its input)")
    ap.add_argument("--sam-type", default=None, help="SAM type for SAM-SR variants and --fusion (vit_t = "
                                                     "MobileSAM, vit_b/vit_l/vit_h; default vit_t)")
    ap.add_argument("--sam-checkpoint", default=None, help="SAM checkpoint for SAM-SR variants / --fusion")
    ap.add_argument("--points-per-side", type=int, default=16,
                    help="SAM automatic-mask point grid for v1 / v2.1 (SAM's default 32; 16 or less on CPU)")
    ap.add_argument("--sam-cache", default=None,
                    help="folder of cached SAM outputs (sam-sr precompute-sam); read and filled")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    ap.add_argument("--mask-threshold", type=float, default=None,
                    help="binarise coarse masks at this value in (0, 1) before refining (default: binary masks "
                         "stay binary, soft masks are refined as they are)")
    # cascade settings: unset = the checkpoint's recommended `inference` settings, else CascadeConfig's
    ap.add_argument("--scales", default=None,
                    help="cascade scales in (0, 1], comma-separated (default: the model's, else 0.125,0.25,0.5,1)")
    ap.add_argument("--min-size", type=int, default=None,
                    help="skip cascade scales whose longer side is below this many pixels "
                         "(default: the model's, else 512)")
    ap.add_argument("--decode", default=None,
                    help="query selection: full, bbox[:PAD], contour[:WIDTH], strided:N, hierarchical[:N] "
                         "(default: the model's recommended mode, else full)")
    ap.add_argument("--margin", type=float, default=None,
                    help="confidence margin in [0, 0.5): refined probabilities within it of 0.5 keep the "
                         "coarse mask's value (default: the model's, else 0 = off)")
    ap.add_argument("--upsample-to", type=int, default=None,
                    help="refine images whose longer side is below this many pixels at this size and resize "
                         "the result back (default: the model's, else 0 = off)")
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="test-time augmentation: also refine the mirrored image and average (2x time; "
                         "default: the model's, else off)")
    ap.add_argument("--fusion-patches", type=int, default=None,
                    help="run the fusion convolutions in N bands (exact, less memory; 0 = off; default 8)")
    ap.add_argument("--encoder-tile", type=int, default=None,
                    help="encode inputs larger than this many pixels in overlapping tiles (0 = off, the default)")
    ap.add_argument("--sparse-tile", type=int, default=None,
                    help="at steps whose decoded pixels are known first (contour, bbox), encode only the "
                         "tiles of this many px they read (a multiple of 8; exact; 0 = whole inputs; default 128)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                    help="encoder precision (bf16 autocast: faster on GPUs, not equal to fp32; default fp32)")


def cascade_settings(args) -> dict:
    """The cascade settings given on the command line (validated by :class:`CascadeConfig`)."""
    cascade = {}
    if args.scales is not None:
        try:
            cascade["scales"] = tuple(float(s) for s in args.scales.split(",") if s.strip())
        except ValueError:
            raise SamSrError(f"--scales must be comma-separated numbers, got {args.scales!r}") from None
    for name in ("decode", "margin", "flip", "min_size", "upsample_to", "fusion_patches", "encoder_tile",
                 "sparse_tile", "precision"):
        if getattr(args, name) is not None:
            cascade[name] = getattr(args, name)
    return cascade


def refiner_from_args(args):
    """A :class:`sam_sr.Refiner` from :func:`add_model_args`'s options."""
    from ..inference import Refiner
    cache = None
    if args.sam_cache:   # keyed by the SAM checkpoint: the given one, else the bundled MobileSAM
        from ..sam.cache import SamCache, model_tag
        from ..sam.loader import BUNDLED_SAM
        cache = SamCache(args.sam_cache, model_tag(args.sam_type or "vit_t", args.sam_checkpoint or BUNDLED_SAM))
    return Refiner.from_checkpoint(args.checkpoint, variant=args.variant, device=args.device,
                                   sam_type=args.sam_type, sam_checkpoint=args.sam_checkpoint,
                                   sam_cache=cache, sam_points_per_side=args.points_per_side,
                                   **cascade_settings(args))
