"""Make the bundled example's coarse mask (sam_sr/assets/coffee_coarse.png) the way a low-resolution
segmenter would: OpenCV GrabCut (Rother et al., SIGGRAPH 2004) run at 1/8 resolution from a rectangle
that is a little too tight, kept at that resolution (75 x 50 px; sam-sr resizes a mask to its image).

It is wrong the way real segmenters are wrong: the left rim of the saucer and the bottom of the saucer
are cut off (missing parts), and the contour is blocky.

``python scripts/make_example_mask.py [--out sam_sr/assets/coffee_coarse.png] [--force]``
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from sam_sr.imaging.read import read_image
from sam_sr.imaging.write import write_png

#: (x, y, width, height) of GrabCut's rectangle at 1/8 resolution (75 x 50 px)
RECT = (12, 4, 48, 44)
ITERATIONS = 5


def make(image: np.ndarray) -> np.ndarray:
    """GrabCut at 1/8 resolution: uint8 (H/8, W/8) in {0, 255}."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
    labels = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), labels, RECT, np.zeros((1, 65)), np.zeros((1, 65)),
                ITERATIONS, cv2.GC_INIT_WITH_RECT)
    return np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "sam_sr" / "assets" / "coffee_coarse.png"))
    ap.add_argument("--force", action="store_true", help="replace an existing file")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (--force replaces it)", file=sys.stderr)
        return 2
    mask = make(read_image(ROOT / "sam_sr" / "assets" / "coffee.jpg"))
    write_png(out, mask)
    print(f"{out}: {mask.shape[1]}x{mask.shape[0]}, foreground {np.mean(mask > 0):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
