"""Cache SAM outputs of a config's images (= ``sam-sr precompute-sam``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import precompute_main

if __name__ == "__main__":
    raise SystemExit(precompute_main())
