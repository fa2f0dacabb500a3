"""Figure helpers: the busiest change window and the pixel-level change map, on hand-made masks."""
import numpy as np

from sam_sr.reporting.visualize import BROKEN, FIXED, LEFT, busiest_window, change_map


def test_busiest_window_finds_the_densest_block():
    changed = np.zeros((20, 30), bool)
    changed[2, 3] = True
    changed[10:14, 20:24] = True         # 16 changed pixels in a 4x4 block
    assert busiest_window(changed, 4) == (10, 20, 14, 24)
    assert busiest_window(changed, 50) == (0, 0, 20, 30)   # clipped to the mask


def test_change_map_tints_fixed_broken_and_left_pixels():
    image = np.zeros((4, 4, 3), np.uint8)
    gt = np.zeros((4, 4), bool)
    gt[:, :2] = True
    coarse, refined = gt.copy(), gt.copy()
    coarse[0, 2] = True                   # coarse wrong, refined right: fixed
    refined[1, 1] = False                 # coarse right, refined wrong: broken
    coarse[3, 3] = refined[3, 3] = True   # both wrong: left
    out = change_map(image, coarse, refined, gt, (0, 0, 4, 4), scale=2, alpha=1.0)
    assert out.shape == (8, 8, 3)
    assert tuple(out[0, 4]) == FIXED and tuple(out[2, 2]) == BROKEN and tuple(out[6, 6]) == LEFT
    assert tuple(out[0, 0]) == (0, 0, 0)  # right in both: the image
