"""Export a training checkpoint as a small inference checkpoint (weights + model config only).

``python scripts/export_model.py runs/crm_r18/final.pt sam_sr/weights/crm_r18.pt [--force]
[--decode contour:8] [--min-size 512] [--margin 0.2] [--upsample-to 960] [--flip]``

``--decode`` / ``--min-size`` / ``--margin`` / ``--upsample-to`` / ``--flip`` set the model's recommended inference settings (the checkpoint config's
``inference`` section, which ``Refiner.from_checkpoint`` uses unless told otherwise).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sam_sr.checkpoint import load_model, save_checkpoint  # noqa: E402
from sam_sr.errors import SamSrError  # noqa: E402
from sam_sr.io import check_output_path  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--decode", default=None, help="recommended query selection, e.g. contour:8")
    ap.add_argument("--min-size", type=int, default=None, help="recommended cascade min_size (px)")
    ap.add_argument("--margin", type=float, default=None, help="recommended confidence margin")
    ap.add_argument("--upsample-to", type=int, default=None, help="recommended upsample_to (px)")
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="recommended test-time mirror averaging")
    args = ap.parse_args()
    try:
        check_output_path(args.dst, args.force)
        model, state = load_model(args.src)
        keep = {k: state[k] for k in ("iteration", "config") if k in state}
        given = {"decode": args.decode, "min_size": args.min_size, "margin": args.margin,
                 "upsample_to": args.upsample_to, "flip": args.flip}
        inference = {k: v for k, v in given.items() if v is not None}
        if inference:
            from sam_sr.inference.cascade import CascadeConfig
            CascadeConfig(**inference)   # validates the settings before anything is written
            config = dict(keep.get("config") or {})
            config["inference"] = {**(config.get("inference") or {}), **inference}
            keep["config"] = config
        save_checkpoint(args.dst, model, state["variant"], state["model_config"], **keep)
    except SamSrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = Path(args.dst).stat().st_size
    print(f"wrote {args.dst}: {state['variant']} at iteration {state.get('iteration')}, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
