"""MobileSAM's pretrained TinyViT stages as the refiner's image features (issue 22, item 3)."""
from __future__ import annotations

import pytest
import torch

from sam_sr.checkpoint import load_model, save_checkpoint
from sam_sr.errors import SamSrError
from sam_sr.models.crm import CRM, CRMConfig
from sam_sr.models.image_features import TinyViTStem, build_image_features
from sam_sr.models.receptive import window_is_exact
from sam_sr.sam.loader import BUNDLED_SAM

SMALL = dict(backbone="resnet18", out_indices=(0, 1, 3), output_stride=8, branch_channels=(8, 8, 16),
             fusion_channels=16, decoder_hidden=(8, 8), mask_skip=True, mask_skip_init=1.0)


@pytest.fixture(scope="module")
def stem() -> TinyViTStem:
    return build_image_features("tinyvit", str(BUNDLED_SAM))


def test_the_stem_gives_mobile_sams_own_features_and_stays_frozen(stem):
    from sam_sr.sam.loader import load_sam
    sam = load_sam("vit_t", device="cpu")
    enc = sam.image_encoder.float().eval()
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        s4, s8 = stem(x)
        ref4 = enc.layers[0].blocks[1](enc.layers[0].blocks[0](enc.patch_embed(x)))
        tokens = enc.layers[0].downsample(ref4)          # (1, 128 * 128, 128): MobileSAM's token layout
    ref8 = tokens.transpose(1, 2).reshape(1, 128, 128, 128)
    assert s4.shape == (1, 64, 256, 256) and s8.shape == (1, 128, 128, 128)
    assert torch.allclose(s4, ref4, atol=1e-4) and torch.allclose(s8, ref8, atol=1e-4)
    stem.train()
    assert not stem.training and not any(p.requires_grad for p in stem.parameters())


def test_the_stem_takes_any_size(stem):
    with torch.no_grad():
        s4, s8 = stem(torch.zeros(2, 3, 72, 200))
    assert s4.shape == (2, 64, 18, 50) and s8.shape == (2, 128, 9, 25)


def test_a_refiner_with_image_features_starts_as_the_one_without_and_windows_stay_exact():
    torch.manual_seed(0)
    plain = CRM(CRMConfig(**SMALL)).eval()
    fed = CRM(CRMConfig(**SMALL, image_features="tinyvit", image_features_checkpoint=str(BUNDLED_SAM))).eval()
    missing = fed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("image_features.", "feature_proj.")) for k in missing)
    img, mask = torch.rand(1, 3, 64, 96), (torch.rand(1, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        assert torch.equal(plain.encode(img, mask), fed.encode(img, mask))   # projections start at zero
        for conv in fed.feature_proj:
            torch.nn.init.normal_(conv.weight, std=0.5)
        assert not torch.allclose(plain.encode(img, mask), fed.encode(img, mask))
    assert fed.context is not None and fed.context >= plain.context

    def enc(x, core):
        return fed.encode_window(x[:, :3], x[:, 3:4], None, core)

    assert window_is_exact(enc, 4, fed.context)


def test_a_saved_refiner_carries_its_image_features(tmp_path):
    torch.manual_seed(1)
    fed = CRM(CRMConfig(**SMALL, image_features="tinyvit", image_features_checkpoint=str(BUNDLED_SAM))).eval()
    for conv in fed.feature_proj:
        torch.nn.init.normal_(conv.weight, std=0.5)
    cfg = fed.config.to_dict()
    cfg["image_features_checkpoint"] = str(tmp_path / "gone.pt")   # never read at load time
    save_checkpoint(tmp_path / "fed.pt", fed, "crm", cfg)
    back, _ = load_model(tmp_path / "fed.pt")
    img, mask = torch.rand(1, 3, 48, 48), torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(back.encode(img, mask), fed.encode(img, mask))


def test_bad_image_feature_settings_are_refused(tmp_path):
    with pytest.raises(SamSrError, match="unknown image_features"):
        build_image_features("resnet")
    with pytest.raises(SamSrError, match="not found"):
        build_image_features("tinyvit", str(tmp_path / "missing.pt"))
    torch.save({"image_encoder.other.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(SamSrError, match="TinyViT's first stages"):
        build_image_features("tinyvit", str(tmp_path / "other.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SamSrError, match="cannot read"):
        build_image_features("tinyvit", str(tmp_path / "junk.pt"))
    with pytest.raises(SamSrError, match="strides 2, 4 and 8"):
        CRM(CRMConfig(**{**SMALL, "out_indices": (0, 1, 2, 3), "branch_channels": (8, 8, 8, 8)},
                      image_features="tinyvit"))
