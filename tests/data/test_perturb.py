import numpy as np
import pytest

from sam_sr.data.perturb import (CoarseMaskSynthesizer, blocky, mask_iou, perturb_to_iou, scale_gap,
                                 simplify_contours)
from tests.conftest import disk_photo


def _blob(h=160, w=200, seed=0):
    return disk_photo(h, w, seed)[1] > 0


@pytest.mark.parametrize("target", [0.95, 0.9, 0.85, 0.8, 0.7])
def test_perturbation_reaches_target_iou(target):
    rng = np.random.default_rng(0)
    reached = []
    for seed in range(6):
        gt = _blob(seed=seed)
        out = perturb_to_iou(gt, target, rng)
        assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
        reached.append(mask_iou(out, gt))
    reached = np.array(reached)
    # stops as soon as IoU falls below the target, one rectangle at a time: lands just under it
    assert (reached < target).all(), reached
    assert (reached > target - 0.1).all(), reached


def test_sampled_targets_cover_the_configured_range():
    rng = np.random.default_rng(1)
    synth = CoarseMaskSynthesizer(iou_range=(0.8, 1.0), mode_weights={"perturb": 1.0}, soft_prob=0.0)
    ious = [mask_iou(synth(_blob(seed=s), rng) >= 0.5, _blob(seed=s)) for s in range(20)]
    assert min(ious) >= 0.7 and max(ious) <= 1.0
    assert np.ptp(ious) > 0.05  # targets are drawn from the range, not one value


def test_contour_simplification_keeps_the_object_roughly():
    gt = _blob()
    simple = simplify_contours(gt.astype(np.uint8), np.random.default_rng(0))
    assert 0.8 < mask_iou(simple, gt) < 1.0


def test_scale_gap_blurs_only_the_boundary():
    gt = _blob()
    out = scale_gap(gt, 8)
    assert out.shape == gt.shape and 0.85 < mask_iou(out, gt) < 1.0
    soft = scale_gap(gt, 8, soft=True)
    assert soft.dtype == np.float32 and 0 < soft.min() + 1e-9 and soft.max() <= 1
    assert ((soft > 0) & (soft < 1)).any()


def test_blocky_is_constant_on_the_low_resolution_grid():
    gt = _blob()
    out = blocky(gt, 8)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1} and 0.8 < mask_iou(out, gt) < 1.0
    h, w = gt.shape
    small = out[:: 8, :: 8] if h % 8 == 0 and w % 8 == 0 else None
    if small is not None:                                 # an exact multiple: 8 x 8 blocks
        assert np.array_equal(np.kron(small, np.ones((8, 8), np.uint8)), out)
    assert not np.array_equal(out, scale_gap(gt, 8))      # a staircase, not the bilinear gap


@pytest.mark.parametrize("mode", ["perturb", "scale_gap", "missing_part", "spurious", "soft"])
def test_each_mode_produces_a_plausible_coarse_mask(mode):
    rng = np.random.default_rng(3)
    synth = CoarseMaskSynthesizer(mode_weights={mode: 1.0}, soft_prob=0.0, low_iou_range=(0.5, 0.7))
    gt = _blob(seed=4)
    out = synth(gt, rng)
    assert out.shape == gt.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    iou = mask_iou(out >= 0.5, gt)
    assert 0.3 < iou < 1.0
    if mode in ("missing_part", "spurious"):
        assert iou < 0.75  # these model the big mistakes of real segmenters
    if mode == "missing_part":
        assert not ((out >= 0.5) & ~gt).any()  # only removes
    if mode == "spurious":
        assert ((out >= 0.5) | ~gt).all()  # only adds


def test_the_right_mode_gives_the_truth_itself():
    gt = _blob(seed=5)
    out = CoarseMaskSynthesizer(mode_weights={"right": 1.0}, soft_prob=0.0)(gt, np.random.default_rng(0))
    assert out.dtype == np.float32 and np.array_equal(out, (gt > 0).astype(np.float32))
    soft = CoarseMaskSynthesizer(mode_weights={"right": 1.0}, soft_prob=1.0)(gt, np.random.default_rng(0))
    assert ((soft > 0) & (soft < 1)).any() and mask_iou(soft >= 0.5, gt) > 0.97


def test_empty_ground_truth_is_handled():
    rng = np.random.default_rng(0)
    empty = np.zeros((50, 60), np.uint8)
    out = perturb_to_iou(empty, 0.9, rng, max_ops=10)
    assert out.shape == empty.shape


def _ring_and_legs(h=160, w=200):
    """A wheel (a ring with an enclosed hole) and, beside it, two legs joined at the top (a gap
    open to the border): the holes and thin parts of issue 22."""
    import cv2
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (60, 80), 40, 1, -1)
    cv2.circle(m, (60, 80), 25, 0, -1)
    m[40:60, 120:180] = 1
    m[60:150, 120:132] = 1
    m[60:150, 168:180] = 1
    return m


def test_enclosed_holes_are_the_background_the_border_cannot_reach():
    from sam_sr.data.perturb import enclosed_holes
    m = _ring_and_legs()
    holes = enclosed_holes(m)
    assert holes[80, 60] and not holes[100, 150] and not holes[0, 0]   # the wheel's inside; not the legs' gap
    assert not (holes & (m > 0)).any()
    assert not enclosed_holes(np.zeros((20, 30), np.uint8)).any()


def test_fill_holes_fills_the_wheel_or_closes_the_gap_between_legs():
    from sam_sr.data.perturb import enclosed_holes, fill_holes
    m = _ring_and_legs()
    out = fill_holes(m, np.random.default_rng(0))
    assert out.dtype == np.uint8 and (out >= m).all()
    assert out[80, 60] == 1 and not enclosed_holes(out).any()        # the only hole: always filled
    legs = m.copy()
    legs[:, :110] = 0                                                # no enclosed hole left
    closed = fill_holes(legs, np.random.default_rng(1))
    assert (closed >= legs).all() and closed.sum() > legs.sum()      # the gap closes from its top
    assert np.array_equal(fill_holes(np.zeros((8, 8), np.uint8), np.random.default_rng(0)), np.zeros((8, 8)))


def test_open_holes_cuts_enclosed_holes_inside_the_object():
    from sam_sr.data.perturb import enclosed_holes, open_holes
    gt = _blob(seed=6)
    out = open_holes(gt, 0.85, np.random.default_rng(2))
    assert out.dtype == np.uint8 and not (out.astype(bool) & ~gt).any()   # only removes
    assert mask_iou(out, gt) < 0.85 and enclosed_holes(out).sum() == (gt & (out == 0)).sum()
    thin = np.zeros((40, 40), np.uint8)
    thin[10:30, 19:21] = 1                                               # no interior: unchanged
    assert np.array_equal(open_holes(thin, 0.5, np.random.default_rng(0)), thin)


@pytest.mark.parametrize("mode", ["fill_holes", "open_holes"])
def test_the_hole_modes_are_synthesiser_modes(mode):
    gt = _ring_and_legs() > 0
    synth = CoarseMaskSynthesizer(mode_weights={mode: 1.0}, soft_prob=0.0, low_iou_range=(0.7, 0.9))
    out = synth(gt, np.random.default_rng(3))
    assert out.dtype == np.float32 and out.shape == gt.shape and mask_iou(out >= 0.5, gt) < 1.0
    assert ((out >= 0.5) | ~gt).all() if mode == "fill_holes" else not ((out >= 0.5) & ~gt).any()
