"""Refine coarse masks: ``python infer.py --image IMG --mask COARSE --out OUT [--checkpoint CKPT]``."""
from sam_sr.cli import infer_main

if __name__ == "__main__":
    raise SystemExit(infer_main())
