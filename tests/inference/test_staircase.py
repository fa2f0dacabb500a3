"""``sam_sr.inference.staircase``: the staircase of a nearest-upsampled mask, found from the mask
alone, and the band the predictor gives it."""
import cv2
import numpy as np
import pytest

from sam_sr.data.perturb import blocky, scale_gap
from sam_sr.inference.staircase import BLOCKY_MARGIN, BLOCKY_WIDTH, blocky_settings, staircase_period


def _blob(h=321, w=481, seed=0):
    """A smooth random object drawn at the photo's resolution (ellipses, a polygon)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    for _ in range(3):
        cv2.ellipse(m, (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))),
                    (int(rng.integers(20, w // 4)), int(rng.integers(20, h // 4))), float(rng.uniform(0, 180)),
                    0, 360, 1, -1)
    pts = rng.integers(0, min(h, w), (7, 2)).astype(np.int32)
    cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


@pytest.mark.parametrize("k", [3, 4, 5, 8, 12, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_nearest_upsampled_mask_gives_its_period(k, seed):
    # its blocks are floor or ceil of each axis's scale (321 / round(321 / 12) = 11.9: 11 or 12 px)
    expected = min(n // round(n / k) for n in (321, 481))
    assert expected in (k - 1, k)
    assert staircase_period(blocky(_blob(seed=seed), k)) == expected


def test_a_non_integer_scale_gives_the_smaller_block():
    small = _blob(seed=3)[::7, ::7]                                    # 46 x 69 blocks
    up = cv2.resize(small.astype(np.uint8), (481, 321), interpolation=cv2.INTER_NEAREST)   # x ~6.97
    assert staircase_period(up) == 6


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_masks_drawn_at_full_resolution_have_no_staircase(seed):
    m = _blob(seed=seed)
    assert staircase_period(m) == 0
    assert staircase_period(scale_gap(m, 8)) == 0                     # bilinear upsampling: smooth
    assert staircase_period(blocky(m, 2)) == 0                        # below MIN_PERIOD
    assert staircase_period(m.astype(np.float32) * 0.8 + 0.1) == 0     # soft: read at 0.5


def test_shapes_that_say_nothing_about_a_grid():
    rect = np.zeros((100, 120), bool)
    rect[20:60, 30:90] = True
    assert staircase_period(rect) == 0                                # 2 transitions per axis
    assert staircase_period(np.zeros((50, 50), bool)) == 0
    assert staircase_period(np.ones((50, 50), bool)) == 0
    with pytest.raises(ValueError, match="H, W"):
        staircase_period(np.zeros((4, 4, 3), bool))


def test_the_band_grows_with_the_period_and_the_cascades_upsampling():
    assert blocky_settings(0, (321, 481), 960, 0.5, 0.0) == {}
    assert blocky_settings(8, (321, 481), 960, 0.5, 0.0) == {"decode": "contour:8", "margin": 0.0}   # 8 * 960/481 / 2
    assert blocky_settings(8, (2000, 3000), 960, 0.5, 0.1) == {"decode": "contour:4", "margin": 0.1}  # not upsampled
    assert blocky_settings(3, (2000, 3000), 0, 0.5, 0.0)["decode"] == "contour:2"                     # at least 2
    assert (BLOCKY_WIDTH, BLOCKY_MARGIN) == (0.5, 0.0)          # the chosen band (docs/RESULTS.md)
