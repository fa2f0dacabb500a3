"""Inference latency and memory (= ``sam-sr profile``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import profile_main

if __name__ == "__main__":
    raise SystemExit(profile_main())
