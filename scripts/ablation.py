"""SAM-SR ablation table on the sod evaluation split: ``python scripts/ablation.py [--limit N]``.

Train the variants first (``accelerate launch train.py --config configs/sam_sr/<variant>.yaml``) after
``python scripts/precompute_sam.py --config configs/sam_sr/v2.1.yaml``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import ablation_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(ablation_main())
