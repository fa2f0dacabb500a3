"""Ground-truth boundary vs image edge profile on hand-made step edges."""
import numpy as np
import pytest

from sam_sr import SamSrError
from sam_sr.evaluation.alignment import edge_profile, signed_distance


def _step(h=30, w=40, edge=20):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, edge:] = 200          # the object's edge lies between columns edge-1 and edge
    return img


def test_signed_distance_counts_pixels_from_the_boundary():
    m = np.zeros((5, 9), np.uint8)
    m[:, 4:] = 255
    sd = signed_distance(m)
    assert sd[2, 4] == -1 and sd[2, 5] == -2 and sd[2, 3] == 1 and sd[2, 1] == 3
    assert np.array_equal(signed_distance(m // 255), sd)   # {0, 1} masks read the same


def test_mask_on_the_edge_peaks_symmetrically():
    mask = np.zeros((30, 40), bool)
    mask[:, 20:] = True
    p = edge_profile(_step(), mask, 3)
    assert p[-1] == pytest.approx(p[1]) and p[-1] > 100 and p[2] == p[-2] == 0


def test_mask_one_pixel_beyond_the_edge_peaks_inside():
    mask = np.zeros((30, 40), bool)
    mask[:, 19:] = True          # drawn one pixel beyond the edge, as sod's masks
    p = edge_profile(_step(), mask, 3)
    assert p[-1] > 100 and p[-2] > 100 and p[1] == 0


def test_bad_input():
    with pytest.raises(SamSrError, match="differ"):
        edge_profile(_step(), np.zeros((30, 41), bool))
    with pytest.raises(SamSrError, match="max_distance"):
        edge_profile(_step(), np.zeros((30, 40), bool), 0)
