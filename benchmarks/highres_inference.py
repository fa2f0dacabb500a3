"""Benchmark: high-resolution inference modes (issue 3), each configuration in a fresh process.

``python benchmarks/highres_inference.py`` profiles the shipped model on $SAM_SR_DATA/highres's
aeroplane (3492x2328) and its 2k/4k/6k resizes, prints the table and writes
``benchmarks/results/highres_<device>.json``. Arguments are passed on to scripts/profile_inference.py
(e.g. ``--sizes 2048 --runs 1``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sam_sr.cli import profile_main

if __name__ == "__main__":
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    args = sys.argv[1:]
    if "--json" not in args:
        args += ["--json", str(Path(__file__).parent / "results" / f"highres_{dev}.json")]
    raise SystemExit(profile_main(args))
