"""compose(): the opening of the disagreements runs in their bounding box, equal to the whole image's."""
import cv2
import numpy as np
import pytest

from sam_sr.variants.v4.region_step import compose


def _reference(coarse, logits, radius):
    """compose as the whole-image opening defines it."""
    region = logits > 0
    if radius <= 0:
        return region
    diff = (region != coarse).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    changed = cv2.morphologyEx(diff, cv2.MORPH_OPEN, k).astype(bool)
    return np.where(changed, region, coarse)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("radius", [0, 1, 3, 7])
def test_compose_equals_whole_image_opening(seed, radius):
    rng = np.random.default_rng(seed)
    h, w = 90 + 7 * seed, 120 - 5 * seed
    coarse = np.zeros((h, w), bool)
    coarse[20:60, 30:90] = True
    logits = np.where(coarse, 1.0, -1.0).astype(np.float32)
    # region-level changes (an added block, a removed block, one at the image's edge) and slivers
    y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
    logits[y:y + 18, x:x + 18] *= -1
    logits[:10, -12:] = 1.0 if seed % 2 else logits[:10, -12:]
    logits[20:60, 29:31] *= -1
    noise = rng.random((h, w)) < 0.01
    logits[noise] *= -1
    out = compose(coarse, logits, radius)
    assert out.dtype == bool and out.shape == (h, w)
    np.testing.assert_array_equal(out, _reference(coarse, logits, radius))


def test_compose_without_disagreement_is_the_coarse_mask():
    coarse = np.zeros((40, 50), bool)
    coarse[10:30, 10:40] = True
    out = compose(coarse, np.where(coarse, 2.0, -2.0), 3)
    np.testing.assert_array_equal(out, coarse)
    assert out is not coarse          # a new array: the caller's mask is not written


@pytest.mark.parametrize("radius", [2, 3, 5])
@pytest.mark.parametrize("side", ["top", "left", "bottom", "right"])
def test_compose_thin_change_at_the_disagreements_edge(radius, side):
    # a stripe thinner than the structuring element, the outermost disagreement (not at the image's
    # edge): the whole-image opening removes it; an opening cut at its bounding box would keep it
    h, w = 80, 100
    coarse = np.zeros((h, w), bool)
    coarse[30:50, 35:65] = True
    logits = np.where(coarse, 1.0, -1.0).astype(np.float32)
    t = 2 * radius - 1
    stripe = {"top": (slice(10, 10 + t), slice(30, 70)), "bottom": (slice(70 - t, 70), slice(30, 70)),
              "left": (slice(25, 55), slice(10, 10 + t)), "right": (slice(25, 55), slice(90 - t, 90))}[side]
    logits[stripe] = 1.0
    logits[38:44, 35:45] = -1.0                      # a second change, inside the object
    out = compose(coarse, logits, radius)
    np.testing.assert_array_equal(out, _reference(coarse, logits, radius))
    assert not out[stripe].any()


@pytest.mark.parametrize("shape", [(2328, 3492), (321, 481), (481, 321), (8, 8), (10, 5000), (5000, 10), (1, 1),
                                   (255, 256), (257, 256)])
def test_valid_cells_are_the_cells_the_photo_covers_in_sams_frame(shape):
    """The region network's ``valid`` input, computed from the photo's size alone, equals the frame
    grid of an all-ones photo (how it was computed before, at the photo's size)."""
    from sam_sr.sam.prompt import LOWRES
    from sam_sr.variants.v4.data import frame_cover, frame_grid
    want = (frame_grid(np.ones(shape, np.float32), LOWRES) >= 0.5).astype(np.float32)
    assert np.array_equal(frame_cover(shape, LOWRES), want)


@pytest.mark.parametrize("shape", [(2328, 3492), (321, 481), (481, 321), (4000, 6000), (1000, 999), (100, 1000),
                                   (256, 256), (17, 33), (8, 8), (5000, 10)])
def test_the_photo_on_sams_grid_equals_the_rounded_float_resize(shape):
    """The region network's ``image`` input, resized as uint8 where the photo shrinks, equals the
    rounded float resize it replaced (random photos: no smooth areas to hide a rounding difference)."""
    from sam_sr.sam.prompt import LOWRES
    from sam_sr.variants.v4.data import frame_grid, frame_image
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    got = frame_image(image, LOWRES)
    assert got.dtype == np.uint8 and got.shape == (LOWRES, LOWRES, 3)
    np.testing.assert_array_equal(got, np.round(frame_grid(image, LOWRES)).astype(np.uint8))
