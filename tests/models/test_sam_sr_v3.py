"""SAM-SR v3.x models: shapes, how the mask reaches the SAM branch, attention windows, config errors."""
import pytest
import torch

from sam_sr import SamSrError
from sam_sr.variants import build_model
from sam_sr.variants.v3.model import MaskAttention

V3 = ["v3.1", "v3.2", "v3.3", "v3.4"]
SMALL = {"sam_channels": 16, "cnn_channels": [8, 8, 8], "sam_proj": 8, "heads": 2, "window": 4,
         "fusion_channels": 16, "decoder_hidden": [16, 16]}


def _inputs(b=2, h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, h, w, generator=g), (torch.rand(b, 1, h, w, generator=g) > 0.5).float(),
            torch.randn(b, 16, 7, 9, generator=g))


@pytest.mark.parametrize("variant", V3)
def test_v3_output_shapes_and_points(variant):
    torch.manual_seed(0)
    model = build_model(variant, SMALL).eval()
    assert model.variant == variant and model.extra_input == "embedding"
    image, mask, sam = _inputs()
    with torch.no_grad():
        full = model(image, mask, extra=sam)
        up = model(image, mask, out_size=(101, 37), extra=sam)
        idx = torch.tensor([[0, 5, 64 * 47 + 63], [100, 2000, 3000]])
        pts = model(image, mask, extra=sam, idx=idx)
    assert full.shape == (2, 1, 48, 64) and up.shape == (2, 1, 101, 37) and pts.shape == (2, 3)
    # point decoding at pixel centres is the full-grid decoding at those pixels
    assert torch.allclose(pts, full.flatten(1).gather(1, idx), atol=1e-4)


@pytest.mark.parametrize("variant,uses_mask", [("v3.1", False), ("v3.2", True), ("v3.3", True),
                                               ("v3.4", True)])
def test_mask_reaches_sam_branch_only_where_designed(variant, uses_mask):
    torch.manual_seed(0)
    model = build_model(variant, SMALL).eval()
    _, mask, sam = _inputs()
    with torch.no_grad():
        a = model.sam_branch(sam, mask, (6, 8))
        b = model.sam_branch(sam, 1 - mask, (6, 8))
    assert a.shape == (2, 8, 6, 8)
    assert (not torch.allclose(a, b)) == uses_mask


def test_windowed_attention_stays_in_its_window_and_global_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 8)
    kv = torch.randn(1, 8, 8, 8)
    kv2 = kv.clone()
    kv2[..., :4, :4] = torch.randn(1, 8, 4, 4)              # change one 4x4 window's keys/values
    win, glob = MaskAttention(8, 2, window=4).eval(), MaskAttention(8, 2, window=0).eval()
    with torch.no_grad():
        dw = (win(x, kv) - win(x, kv2)).abs()
        dg = (glob(x, kv) - glob(x, kv2)).abs()
    assert dw[..., :4, :4].max() > 1e-3 and dw[..., 4:, :].max() == 0 and dw[..., :, 4:].max() == 0
    assert dg[..., 4:, 4:].max() > 1e-3
    # windows also work on sizes that are not multiples of the window
    assert win(torch.randn(1, 8, 6, 9), torch.randn(1, 8, 6, 9)).shape == (1, 8, 6, 9)


def test_v3_bad_inputs_and_configs():
    model = build_model("v3.2", SMALL)
    image, mask, sam = _inputs()
    with pytest.raises(SamSrError, match="needs SAM features"):
        model(image, mask)
    with pytest.raises(SamSrError, match="needs SAM features"):
        model(image, mask, extra=torch.randn(2, 3, 7, 9))
    with pytest.raises(SamSrError, match="must match"):
        model(image, mask[..., :32], extra=sam)
    with pytest.raises(SamSrError, match="mask_mode"):
        build_model("v3.2", {"mask_mode": "none"})
    with pytest.raises(SamSrError, match="unknown v3"):
        build_model("v3.1", {"backbone": "resnet18"})


def test_v3_cascade_refuses_flip():
    from sam_sr import CascadeConfig
    from sam_sr.inference.cascade import cascade_refine
    model = build_model("v3.1", SMALL).eval()
    image, mask, sam = _inputs(b=1)
    with pytest.raises(SamSrError, match="flip"):
        cascade_refine(model, image, mask, CascadeConfig(scales=(1.0,), flip=True), extra=sam)
