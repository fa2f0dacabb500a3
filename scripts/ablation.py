"""The SAM-SR ablation table (= ``sam-sr ablation``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import ablation_main

if __name__ == "__main__":
    raise SystemExit(ablation_main())
