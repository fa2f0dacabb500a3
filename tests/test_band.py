"""The contour band is one shape (a disc around the contour) for inference and training."""
import cv2
import numpy as np
import pytest
import torch

from sam_sr import SamSrError
from sam_sr.inference.band import band_kernel, contour_band
from sam_sr.inference.query import DecodeMode, decode_step
from sam_sr.training.losses import sample_query_points
from sam_sr.variants import build_model
from tests.conftest import TINY


def _blobs(seed, h=40, w=56):
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.float32)
    for _ in range(3):
        y, x, r = rng.integers(5, h - 5), rng.integers(5, w - 5), rng.integers(3, 12)
        m[max(0, y - r):y + r, max(0, x - r):x + r] = 1
    return m


def test_a_single_pixel_gives_a_disc():
    m = np.zeros((21, 21), np.float32)
    m[10, 10] = 1
    band = contour_band(m, 4)
    yy, xx = np.mgrid[:21, :21]
    d2 = (yy - 10) ** 2 + (xx - 10) ** 2
    assert band[10, 14] and band[14, 10] and not band[10, 15]
    assert not band[14, 14]                       # a square would reach the corner (Chebyshev 4)
    assert band[d2 <= 9].all() and not band[d2 > 25].any()
    assert np.array_equal(band_kernel(4).astype(bool), band[6:15, 6:15])


@pytest.mark.parametrize("width", [0, 1, 2, 5])
def test_numpy_and_tensor_inputs_give_the_same_band_as_opencv(width):
    masks = np.stack([_blobs(s) for s in range(3)])[:, None]          # (3, 1, H, W)
    soft = masks * 0.6 + 0.2                                          # thresholded at 0.5 inside
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ref = np.stack([cv2.dilate(m[0].astype(np.uint8), k) != cv2.erode(m[0].astype(np.uint8), k)
                    for m in masks])[:, None]
    assert np.array_equal(contour_band(masks, width), ref)
    assert np.array_equal(contour_band(soft, width), ref)
    t = contour_band(torch.from_numpy(soft), width)
    assert t.dtype == torch.bool and np.array_equal(t.numpy(), ref)
    assert np.array_equal(contour_band(masks[0, 0], width), ref[0, 0])
    if width == 0:
        assert not ref.any()
    with pytest.raises(SamSrError, match="band width"):
        contour_band(masks, -1)


def test_training_points_lie_in_the_band_that_contour_decoding_refines():
    """``train.point_band: W`` samples exactly where ``--decode contour:W`` re-decodes."""
    torch.manual_seed(0)
    model = build_model("crm", TINY).eval()
    coarse = torch.from_numpy(_blobs(7))
    h, w = coarse.shape
    with torch.no_grad():
        proj = model.encode(torch.rand(1, 3, h, w), coarse[None, None])
        out, n = decode_step(model, proj, (h, w), (-1, -1, 1, 1), coarse, DecodeMode.parse("contour:3"),
                             margin=0.0)
    decoded = out != coarse          # random weights: every decoded pixel moves off {0, 1}
    assert n == int(decoded.sum()) > 0
    idx = sample_query_points(coarse[None, None], coarse[None, None], 2000, 1.0, coarse_band=3,
                              generator=torch.Generator().manual_seed(1))
    assert decoded.flatten()[idx].all()
    assert len(torch.unique(idx)) > 0.5 * n       # and they cover the band
