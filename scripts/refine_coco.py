"""Refine a COCO results file: ``python scripts/refine_coco.py --results R.json --annotations A.json
--out OUT.json [--eval] [--report R.html]`` (= ``sam-sr coco``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import coco_main

if __name__ == "__main__":
    raise SystemExit(coco_main())
