"""Overlay figure of refinements (= ``sam-sr figure --ids ID,ID --source dss [--zoom 40] --out FIG.png``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import figure_main

if __name__ == "__main__":
    raise SystemExit(figure_main())
