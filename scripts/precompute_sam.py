"""Cache SAM outputs for a config's training data and the evaluation split, so training never runs SAM.

    python scripts/precompute_sam.py --config configs/sam_sr/v2.1.yaml [--eval-ids configs/splits/sod_eval.txt]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import precompute_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(precompute_main())
