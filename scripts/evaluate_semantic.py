"""Label-map refinement and SAM fusion on CamVid (= ``sam-sr eval-semantic``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import semantic_eval_main

if __name__ == "__main__":
    raise SystemExit(semantic_eval_main())
