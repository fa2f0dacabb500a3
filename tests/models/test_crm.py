import pytest
import timm
import torch

from sam_sr.errors import SamSrError
from sam_sr.models import CRMConfig, query_grid
from sam_sr.variants import build_model
from tests.conftest import TINY


@pytest.mark.parametrize("in_hw,out_hw", [((64, 64), (64, 64)), ((48, 80), (333, 101)),
                                          ((57, 43), (17, 9)), ((32, 32), (1, 1))])
def test_output_shapes_at_arbitrary_sizes(tiny_model, in_hw, out_hw):
    img = torch.rand(2, 3, *in_hw)
    mask = torch.rand(2, 1, *in_hw)
    with torch.no_grad():
        out = tiny_model(img, mask, out_size=out_hw)
    assert out.shape == (2, 1, *out_hw)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_default_output_size_is_input_size(tiny_model):
    with torch.no_grad():
        out = tiny_model(torch.rand(1, 3, 40, 56), torch.rand(1, 1, 40, 56))
    assert out.shape == (1, 1, 40, 56)


@pytest.mark.parametrize("bounds", [(-1, -1, 1, 1), (-0.8, -0.9, 0.95, 0.7)])
def test_separable_grid_decoding_equals_pointwise_queries(tiny_model, bounds):
    proj = tiny_model.encode(torch.rand(2, 3, 50, 36), torch.rand(2, 1, 50, 36))
    coord, cell = query_grid(29, 71, bounds)
    with torch.no_grad():
        pointwise = tiny_model.logits_at(proj, coord, cell).view(2, 29, 71)
        grid = tiny_model.decoder.query_grid(proj, 29, 71, bounds, chunk=300)
    assert torch.allclose(pointwise, grid, atol=1e-5)


def test_chunked_decoding_equals_unchunked(tiny_model):
    proj = tiny_model.encode(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
    coord, cell = query_grid(40, 40)
    with torch.no_grad():
        a = tiny_model.decoder.query_chunked(proj, coord, cell, chunk=10_000)
        b = tiny_model.decoder.query_chunked(proj, coord, cell, chunk=77)
    assert torch.allclose(a, b, atol=1e-6)


def test_mask_changes_the_output(tiny_model):
    img = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        a = tiny_model(img, torch.zeros(1, 1, 48, 48))
        b = tiny_model(img, torch.ones(1, 1, 48, 48))
    assert not torch.allclose(a, b)


def test_extra_channels_are_required_and_used():
    m = build_model("crm", {**TINY, "extra_channels": 3}).eval()
    img, mask = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    with pytest.raises(SamSrError, match="extra input"):
        m(img, mask)
    with torch.no_grad():
        assert m(img, mask, extra=torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_wrong_channel_counts_raise(tiny_model):
    with pytest.raises(SamSrError):
        tiny_model(torch.rand(1, 4, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(SamSrError):
        tiny_model(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 16, 16))


def test_local_backbone_checkpoint_zero_initialises_extra_channels(tmp_path):
    torch.manual_seed(1)
    ref = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    m = build_model("crm", {**TINY, "extra_channels": 3, "backbone_checkpoint": str(path)})
    w = m.encoder.body.conv1.weight
    assert w.shape[1] == 3 + 1 + 3
    assert torch.equal(w[:, :3], ref.conv1.weight)
    assert torch.count_nonzero(w[:, 3:]) == 0
    assert torch.equal(m.encoder.body.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)


def test_backbone_checkpoint_of_another_architecture_is_rejected(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), path)
    with pytest.raises(SamSrError, match="does not fit"):
        build_model("crm", {**TINY, "backbone_checkpoint": str(path)})
    with pytest.raises(SamSrError, match="not found"):
        build_model("crm", {**TINY, "backbone_checkpoint": str(tmp_path / "none.pth")})


def test_paper_configuration_builds():
    cfg = {"backbone": "resnet50", "out_indices": [0, 1, 3], "branch_channels": [64, 64, 128],
           "fusion_channels": 256, "dropout": 0.5}
    m = build_model("crm", cfg)
    assert m.encoder.channels == [64, 256, 1024]
    assert m.encoder.reductions == [2, 4, 8]
    assert m.decoder.feat_proj.in_channels == 256


def test_unknown_variant_and_keys():
    with pytest.raises(SamSrError, match="unknown variant"):
        build_model("nope")
    with pytest.raises(SamSrError, match="unknown model config"):
        CRMConfig.from_dict({"bakbone": "resnet18"})


def test_mask_skip_adds_the_coarse_mask_to_the_logits():
    torch.manual_seed(0)
    plain = build_model("crm", TINY).eval()
    skip = build_model("crm", {**TINY, "mask_skip": True, "mask_skip_init": 1.5}).eval()
    missing = skip.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["skip_scale"]
    img, mask = torch.rand(1, 3, 40, 48), (torch.rand(1, 1, 40, 48) > 0.5).float()
    with torch.no_grad():
        a, b = plain(img, mask), skip(img, mask)
    assert torch.allclose(b - a, 1.5 * (2 * mask - 1), atol=1e-5)


def test_a_non_resnet_timm_backbone_refines_and_takes_local_weights(tmp_path):
    """EfficientNet (timm features_only, dilated to stride 8): builds, runs through the cascade, and
    gets the mask channel added to its RGB stem (named conv_stem, not conv1) with zero weights."""
    from sam_sr import CascadeConfig
    from sam_sr.inference.cascade import cascade_refine
    cfg = {"backbone": "efficientnet_b0", "out_indices": [0, 1, 2], "branch_channels": [8, 8, 8],
           "fusion_channels": 16, "decoder_hidden": [16, 16]}
    torch.manual_seed(0)
    m = build_model("crm", cfg).eval()
    assert m.encoder.reductions == [2, 4, 8]
    img, mask = torch.rand(1, 3, 48, 64), (torch.rand(1, 1, 48, 64) > 0.5).float()
    out = cascade_refine(m, img, mask, CascadeConfig(scales=(0.5, 1.0), min_size=8))
    assert out.shape == (1, 1, 48, 64) and torch.isfinite(out).all()
    ref = timm.create_model("efficientnet_b0", pretrained=False)
    path = tmp_path / "effnet.pth"
    torch.save(ref.state_dict(), path)
    m = build_model("crm", {**cfg, "extra_channels": 2, "backbone_checkpoint": str(path)})
    w = m.encoder.body.conv_stem.weight
    assert w.shape[1] == 3 + 1 + 2 and torch.equal(w[:, :3], ref.conv_stem.weight)
    assert torch.count_nonzero(w[:, 3:]) == 0


@pytest.mark.parametrize("backbone,indices,match", [
    ("vit_tiny_patch16_224", [0, 1, 2], "cannot build backbone"),      # no dilated multi-scale features
    ("convnext_atto", [0, 1, 2], "stride 4"),                         # its first feature is at stride 4
    ("no_such_net", [0, 1, 2], "cannot build backbone"),
])
def test_backbones_the_encoder_cannot_use_are_refused(backbone, indices, match):
    with pytest.raises(SamSrError, match=match):
        build_model("crm", {**TINY, "backbone": backbone, "out_indices": indices})
