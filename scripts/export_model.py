"""Export a training checkpoint for inference (= ``sam-sr export SRC DST [--decode ...]``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import export_main

if __name__ == "__main__":
    raise SystemExit(export_main())
