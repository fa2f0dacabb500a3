"""The pixel head (full-resolution logit correction): zero start, banded = whole, same function in
training (points), full-grid and cascade decoding."""
import pytest
import torch

from sam_sr import CascadeConfig, SamSrError
from sam_sr.inference.cascade import cascade_refine
from sam_sr.models.pixel_head import LazyPixelMap, PixelHead
from sam_sr.variants import build_model
from tests.conftest import TINY

HEAD = {**TINY, "mask_skip": True, "pixel_head": 8, "pixel_head_layers": 2}


def _randomise(model):
    """Give the zero-initialised output layer weights, so that the head changes the logits."""
    torch.manual_seed(1)
    with torch.no_grad():
        model.pixel_head.out.weight.normal_(0, 0.5)
        model.pixel_head.out.bias.fill_(0.3)
    return model


def test_new_pixel_head_starts_as_the_model_without_one():
    torch.manual_seed(0)
    plain = build_model("crm", {**TINY, "mask_skip": True}).eval()
    head = build_model("crm", HEAD).eval()
    missing = head.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("pixel_head.") for k in missing)
    img, mask = torch.rand(1, 3, 40, 48), (torch.rand(1, 1, 40, 48) > 0.5).float()
    with torch.no_grad():
        assert torch.equal(plain(img, mask), head(img, mask))
        assert not torch.equal(plain(img, mask), _randomise(head)(img, mask))


def test_banded_equals_whole():
    torch.manual_seed(0)
    head = PixelHead(6, 3).eval()
    torch.nn.init.normal_(head.out.weight)
    x = torch.randn(1, 4, 53, 31)
    with torch.no_grad():
        whole = head(x)
    assert torch.allclose(head.banded(x, rows=8), whole, atol=1e-5)
    assert torch.allclose(head.banded(x, rows=53), whole)


def test_points_grid_and_cascade_agree():
    model = _randomise(build_model("crm", HEAD).eval())
    img, mask = torch.rand(1, 3, 48, 64), (torch.rand(1, 1, 48, 64) > 0.5).float()
    idx = torch.randint(0, 48 * 64, (1, 50))
    with torch.no_grad():
        grid = model(img, mask)
        points = model(img, mask, idx=idx)
    assert torch.allclose(points, grid.flatten(1).gather(1, idx), atol=1e-5)
    out = cascade_refine(model, img, mask, CascadeConfig(scales=(1.0,), pad=0))
    assert torch.allclose(out, torch.sigmoid(grid), atol=1e-5)
    contour = cascade_refine(model, img, mask, CascadeConfig(scales=(1.0,), pad=0, decode="contour:2"))
    band = contour != mask
    assert band.any() and torch.allclose(contour[band], torch.sigmoid(grid)[band], atol=1e-5)


@pytest.mark.parametrize("tile", [7, 16])
def test_lazy_pixel_map_equals_the_whole_map_where_read(tile):
    model = _randomise(build_model("crm", HEAD).eval())
    img, mask = torch.rand(1, 3, 45, 61), (torch.rand(1, 1, 45, 61) > 0.5).float()
    with torch.no_grad():
        whole = model.pixel_logits(img, mask)[0, 0]
    lazy = model.pixel_map(img, mask, tile)
    rows, cols = torch.tensor([0, 3, 44, 20]), torch.tensor([60, 5, 0, 33])
    assert torch.allclose(lazy.points(rows, cols), whole[rows, cols], atol=1e-5)
    assert 0 < lazy.computed_pixels < 45 * 61    # only the tiles holding those pixels
    r, c = torch.arange(10, 30), torch.arange(0, 61, 3)
    assert torch.allclose(lazy.grid(r, c), whole[r][:, c], atol=1e-5)
    lazy.grid(torch.arange(45), torch.arange(61))
    assert lazy.computed_pixels == 45 * 61 and torch.allclose(lazy.values, whole, atol=1e-5)


def test_cascade_computes_the_pixel_head_only_near_decoded_pixels():
    model = _randomise(build_model("crm", HEAD).eval())
    img, mask = torch.rand(1, 3, 96, 128), torch.zeros(1, 1, 96, 128)
    mask[..., 10:30, 12:40] = 1
    outs = {}
    for tile in (0, 16):
        cfg = CascadeConfig(scales=(0.5, 1.0), min_size=8, decode="contour:2", pixel_tile=tile)
        outs[tile], info = cascade_refine(model, img, mask, cfg, return_info=True)
        outs[f"f{tile}"] = info["pixel_fraction"]
    assert torch.allclose(outs[0], outs[16], atol=1e-5)
    assert outs["f0"] == 1.0 and 0 < outs["f16"] < 0.5


def test_pixel_head_gets_gradients_in_training():
    model = build_model("crm", HEAD).train()
    img, mask = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    model(img, mask, idx=torch.randint(0, 32 * 32, (2, 20))).sum().backward()
    assert model.pixel_head.out.weight.grad.abs().sum() > 0


def test_bad_pixel_head_settings():
    with pytest.raises(SamSrError, match="pixel_head"):
        build_model("crm", {**TINY, "pixel_head": -1})
    with pytest.raises(SamSrError, match="no pixel head"):
        build_model("crm", TINY).pixel_logits(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(SamSrError, match="no pixel head"):
        build_model("crm", TINY).pixel_map(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(SamSrError, match="tile"):
        LazyPixelMap(lambda *a: None, (8, 8), 1, tile=0)
    with pytest.raises(SamSrError, match="pixel_tile"):
        CascadeConfig(pixel_tile=-1)
