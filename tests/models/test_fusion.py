"""Patched fusion's row resampling (sam_sr.models.fusion._bilinear_rows): any band of rows equals the
same rows of the whole map's bilinear resampling, bit for bit where the ratio is a power of two (the
fusion's stride-4 and stride-8 maps), and to float rounding otherwise; the patched fusion then equals
the whole fusion exactly."""
import pytest
import torch
import torch.nn.functional as F

from sam_sr.models.fusion import FeatureFusion, _bilinear_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("hs,f,ws,w", [(8, 2, 5, 10), (7, 4, 9, 36), (12, 8, 3, 24), (1, 4, 4, 16), (16, 4, 16, 61)])
def test_every_band_of_a_power_of_two_upsampling_is_bit_equal(hs, f, ws, w, dtype):
    x = torch.randn(2, 3, hs, ws, generator=torch.Generator().manual_seed(hs * f)).to(dtype)
    whole = F.interpolate(x, size=(hs * f, w), mode="bilinear", align_corners=False)
    for r0 in range(hs * f):
        for r1 in range(r0 + 1, hs * f + 1):
            assert torch.equal(_bilinear_rows(x, (hs * f, w), r0, r1), whole[:, :, r0:r1]), (r0, r1)


def test_other_ratios_agree_to_float_rounding():
    x = torch.randn(1, 4, 7, 6, generator=torch.Generator().manual_seed(0))
    whole = F.interpolate(x, size=(21, 17), mode="bilinear", align_corners=False)   # x3 rows
    for r0, r1 in [(0, 5), (4, 13), (16, 21)]:
        torch.testing.assert_close(_bilinear_rows(x, (21, 17), r0, r1), whole[:, :, r0:r1], atol=1e-6, rtol=1e-6)
    assert torch.equal(_bilinear_rows(whole, (21, 17), 3, 9), whole[:, :, 3:9])    # same size: a slice


def test_patched_fusion_equals_the_whole_fusion_exactly():
    torch.manual_seed(0)
    fusion = FeatureFusion([4, 6, 8], [3, 3, 5], 7).eval()
    feats = [torch.randn(1, 4, 40, 24), torch.randn(1, 6, 20, 12), torch.randn(1, 8, 10, 6)]
    with torch.no_grad():
        whole = fusion(feats)
        for bands in (1, 3, 8, 40):
            assert torch.equal(fusion.forward_patched(feats, bands), whole)
