"""Evaluate a refiner: ``python scripts/evaluate.py [--checkpoint CKPT] [--json OUT]`` (= ``sam-sr eval``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import eval_main

if __name__ == "__main__":
    raise SystemExit(eval_main())
