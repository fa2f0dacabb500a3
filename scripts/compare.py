"""Compare refiners and baselines on one dataset (see ``sam-sr compare --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sam_sr.cli import command_main

if __name__ == "__main__":
    raise SystemExit(command_main("compare")())
