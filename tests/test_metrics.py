import numpy as np
import pytest

from sam_sr.evaluation.metrics import (
    BinaryScores,
    boundary_accuracy,
    boundary_radii,
    contour_offset,
    intersection_union,
    iou,
)


def test_iou_hand_computed():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True                      # 4 pixels
    pred = np.zeros((4, 4), bool)
    pred[:2, 1:3] = True                   # 4 pixels, 2 shared
    assert intersection_union(pred, gt) == (2, 6)
    assert iou(pred, gt) == pytest.approx(2 / 6)
    assert iou(gt, gt) == 1.0
    assert iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0   # both empty
    assert iou(np.ones((3, 3)), np.zeros((3, 3))) == 0.0
    assert iou(pred.astype(np.uint8) * 255, gt.astype(np.uint8)) == pytest.approx(2 / 6)


def test_cumulative_differs_from_mean():
    s = BinaryScores()
    a = np.zeros((10, 10), bool); a[:1, :1] = True          # tiny object, IoU 0
    s.add(np.zeros((10, 10), bool), a)
    b = np.zeros((10, 10), bool); b[:, :5] = True           # big object, IoU 1
    s.add(b, b)
    out = s.summary()
    assert out["n"] == 2
    assert out["iou_mean"] == pytest.approx(50.0)
    assert out["iou_cumulative"] == pytest.approx(100 * 50 / 51)


def test_radii_follow_cascadepsp():
    assert boundary_radii(2160, 3840) == [1, 4, 8, 12, 16]
    assert boundary_radii(321, 481) == [1, 1, 1, 2, 2]


def test_boundary_accuracy_hand_computed():
    # 30x30 image: max_r = 0.2 -> all five radii are 1 (a 3x3 cross-shaped ellipse kernel)
    gt = np.zeros((30, 30), np.uint8)
    gt[10:20, 10:20] = 1
    assert boundary_radii(30, 30) == [1, 1, 1, 1, 1]
    assert boundary_accuracy(gt, gt) == 1.0
    # the band for r=1 (cross kernel) = the square's 36 edge pixels + the 40 pixels that touch its
    # sides from outside (the 4 diagonal corner pixels are not reached by a cross):
    inner = np.zeros_like(gt); inner[10:20, 10:20] = 1; inner[11:19, 11:19] = 0      # 36 pixels
    outer = np.zeros_like(gt); outer[9:21, 9:21] = 1; outer[10:20, 10:20] = 0
    outer[9, 9] = outer[9, 20] = outer[20, 9] = outer[20, 20] = 0                     # 40 pixels
    band = (inner | outer).astype(bool)
    assert band.sum() == 76
    pred = gt.copy()
    pred[10, 10:20] = 0                     # remove the top row: 10 band pixels wrong
    assert boundary_accuracy(pred, gt) == pytest.approx(66 / 76)
    pred2 = gt.copy()
    pred2[5, 5] = 1                         # an error outside the band does not count
    assert boundary_accuracy(pred2, gt) == 1.0


def test_boundary_accuracy_of_all_wrong_prediction():
    gt = np.zeros((30, 30), np.uint8)
    gt[10:20, 10:20] = 1
    assert boundary_accuracy(1 - gt, gt) == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        iou(np.zeros((3, 3)), np.zeros((3, 4)))


def test_contour_offset_measures_a_rim_in_pixels():
    """0 for the truth itself, +1 / +2 for a mask 1 / 2 px wider all round, -1 for one 1 px narrower;
    NaN for an empty mask; BinaryScores reports the mean over images."""
    import cv2
    gt = np.zeros((100, 120), bool)
    gt[30:70, 20:90] = True
    wide1 = cv2.dilate(gt.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    wide2 = cv2.dilate(gt.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    narrow = cv2.erode(gt.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert contour_offset(gt, gt) == 0.0
    assert contour_offset(wide1, gt) == pytest.approx(1.0, abs=0.05)
    assert contour_offset(wide2, gt) == pytest.approx(2.0, abs=0.1)
    assert contour_offset(narrow, gt) == pytest.approx(-1.0, abs=0.05)
    assert np.isnan(contour_offset(np.zeros_like(gt), gt))
    with pytest.raises(ValueError):
        contour_offset(gt[:50], gt)
    s = BinaryScores()
    s.add(wide1, gt)
    s.add(narrow, gt)
    s.add(np.zeros_like(gt), gt)                       # undefined: left out of the mean
    assert s.summary()["contour_offset_px"] == pytest.approx(0.0, abs=0.05)
