"""``sam-sr compare``: several refiners and baselines on the same photos and coarse masks, one table."""
from __future__ import annotations

import argparse

from . import argtypes
from .common import data_or, sam_cache_folder

HELP = "compare refiners and baselines (IoU, mBA, photos losing IoU) on one dataset in one pass"
DESCRIPTION = """Score several methods on the same photos and coarse masks (each photo read once):
`default` (the shipped default model with its settings), `keep-regions` (the default with
--regions keep: the coarse mask's regions kept whole, its boundary refined), `crm` (the CRM band refiner,
sam_sr/weights/crm_r18.pt), `sam-prompt` (training-free: SAM prompted from the coarse mask, then the
CRM cascade), `sam-box` (MobileSAM prompted with the coarse mask's box, candidate chosen by IoU with the
coarse mask; SAM's mask resampled to the photo, no boundary step) and `ckpt:PATH` (any checkpoint with
its own settings). Default dataset: $SAM_SR_DATA/sod, the 80 evaluation photos, coarse masks of three
saliency networks and the x8 scale gap."""

METHODS = ("default", "keep-regions", "crm", "sam-prompt", "sam-box")


def arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--methods", default="crm,sam-box,sam-prompt,default",
                    help=f"comma-separated: {', '.join(METHODS)}, ckpt:PATH")
    ap.add_argument("--root", default=None, help="dataset folder (default: $SAM_SR_DATA/sod)")
    ap.add_argument("--layout", default="generic")
    ap.add_argument("--ids", default="configs/splits/sod_eval.txt", help="file of ids ('' for all)")
    ap.add_argument("--sources", default="picanet,dss,amulet,scale_gap_x8")
    ap.add_argument("--limit", type=argtypes.count, default=0, help="first N photos only (0 = all)")
    ap.add_argument("--sam-cache", default=None, help="folder of cached SAM embeddings (read and filled)")
    ap.add_argument("--device", type=argtypes.device, default=None)
    ap.add_argument("--json", default=None, help="write the results (with per-photo IoU) here")
    ap.add_argument("--coarse-input", choices=argtypes.COARSE_INPUT_NAMES, default="binary",
                    help="what the methods are given: the coarse mask thresholded at 0.5 (default), or the "
                         "source's map as stored (soft: a saliency network's probabilities); the coarse "
                         "mask is scored thresholded at 0.5 either way")


def build(method: str, cache, device):
    """The refiner (or baseline) named ``method``."""
    from ..errors import SamSrError
    from ..inference import Refiner
    from ..inference.predictor import CRM_CHECKPOINT
    from ..variants.sam_prompt import SamAnswer
    if method == "default":
        return Refiner.from_checkpoint(device=device, sam_cache=cache)
    if method == "keep-regions":
        return Refiner.from_checkpoint(device=device, regions="keep")
    if method == "crm":
        return Refiner.from_checkpoint(CRM_CHECKPOINT, variant="crm", device=device)
    if method == "sam-prompt":
        return Refiner.from_checkpoint(CRM_CHECKPOINT, variant="sam-prompt", device=device, sam_cache=cache)
    if method == "sam-box":
        return SamAnswer({"rounds": 1, "points": False, "negative": False, "mask": False}, sam_cache=cache,
                         device=device)
    if method.startswith("ckpt:"):
        return Refiner.from_checkpoint(method[5:], device=device, sam_cache=cache)
    raise SamSrError(f"unknown method {method!r}; choose from {list(METHODS)} or ckpt:PATH")


def run(args) -> int:
    from ..data import load_samples
    from ..errors import SamSrError
    from ..evaluation.evaluate import compare, format_comparison, write_json
    from ..imaging.outputs import check_output_path
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or len(set(methods)) != len(methods):
        raise SamSrError(f"--methods needs distinct names, got {args.methods!r}")
    if args.json:
        check_output_path(args.json, force=True)      # an unwritable path fails before the evaluation
    cache = None
    folder = sam_cache_folder(args.sam_cache)       # a file or an unwritable folder fails here
    if folder is not None:
        from ..sam.cache import SamCache, model_tag
        from ..sam.loader import BUNDLED_SAM
        cache = SamCache(folder, model_tag("vit_t", BUNDLED_SAM))
    root = data_or(args.root, "sod", "--root")
    samples = load_samples({"layout": args.layout, "root": root, "ids_file": args.ids or None})
    if args.limit:
        samples = samples[: args.limit]
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    refiners = {m: build(m, cache, args.device) for m in methods}
    results = compare(refiners, samples, sources, args.coarse_input)
    print(format_comparison(results))
    if args.json:
        from ..paths import portable
        meta = {"root": portable(root), "ids": args.ids, "n_images": len(samples),
                "coarse_input": args.coarse_input, "methods": {
            m: {"checkpoint": portable(r.info.get("checkpoint")), "variant": r.info.get("variant"),
                **r.cascade.settings(), "precision_used": r.info.get("precision")} if hasattr(r, "cascade") else {"prompt": r.prompt.to_dict()}
            for m, r in refiners.items()}}
        write_json(args.json, {"meta": meta, "results": results})
    return 0
