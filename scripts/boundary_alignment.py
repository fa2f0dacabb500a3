"""Where datasets' boundaries sit on the image edges (= ``sam-sr boundary-alignment``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import boundary_alignment_main

if __name__ == "__main__":
    raise SystemExit(boundary_alignment_main())
