"""The variant registry: one spec per variant, real classes, and what a new variant needs."""
import importlib

import numpy as np
import pytest
import torch

from sam_sr import Refiner, SamSrError
from sam_sr.checkpoint import save_checkpoint
from sam_sr.models.base import RefinerModel
from sam_sr.models.crm import CRM, CRMConfig
from sam_sr.sam import build_tiny_sam
from sam_sr.sam.stage import SamStage
from sam_sr.variants import REGISTRY, available_variants, build_model, get_variant
from sam_sr.variants.spec import PACKAGE_DIR, VariantSpec
from tests.conftest import TINY, disk_photo

V3 = {"sam_channels": 16, "cnn_channels": [8, 8, 8], "sam_proj": 8, "heads": 2, "fusion_channels": 16,
      "decoder_hidden": [16, 16]}


def test_the_registry_lists_every_variant_once_with_a_real_importable_class():
    assert available_variants() == ["crm", "crm-full", "v1", "v2.1", "v2.2", "v3.1", "v3.2", "v3.3", "v3.4",
                                    "sam-prompt", "v4", "v5", "v5-edge", "v5-holes"]
    for name, spec in REGISTRY.items():
        assert spec.name == name and issubclass(spec.model, RefinerModel)
        module = importlib.import_module(spec.model.__module__)
        assert getattr(module, spec.model.__name__) is spec.model          # not made with type()
        model = build_model(name, V3 if name.startswith("v3") else TINY)
        assert type(model) is spec.model and model.variant == name
        assert (spec.sam_stage is None) == (name in ("crm", "crm-full"))
        extra = model.extra_input
        assert extra == ("embedding" if name.startswith("v3") else "channels" if spec.extra_channels else "none")
        if extra == "channels":
            assert model.config.extra_channels == spec.extra_channels
    with pytest.raises(SamSrError, match="unknown variant"):
        get_variant("v9")


def test_fixed_settings_of_a_variant_are_enforced():
    assert build_model("v3.4", V3).config.mask_mode == "window"
    with pytest.raises(SamSrError, match="mask_mode"):
        build_model("v3.4", {**V3, "mask_mode": "global"})
    with pytest.raises(SamSrError, match="extra_channels"):
        build_model("v2.1", {**TINY, "extra_channels": 1})


class _SamMaskStage(SamStage):
    """A stand-in for a "the SAM step replaces the coarse mask" variant (as sam-prompt and v4 will be):
    it returns a corrected coarse mask at SAM's own resolution (here 64 x 64 of a 96 x 128 image's
    aspect: 48 x 64), which the predictor resizes to the image."""

    uses_embedding = True

    def __call__(self, source, image, coarse, rng=None):
        source.embedding(image)                                   # the stage may use SAM
        low = np.zeros((48, 64), np.float32)
        low[12:36, 16:48] = 1.0
        return low, None, {"replaced": True}


def test_a_new_variant_is_one_spec_a_stage_replacing_the_coarse_mask_and_a_crm_refiner(tmp_path, monkeypatch):
    """What adding a variant takes: a spec (name, CRM refiner, SAM stage, default SAM checkpoint) and its
    registry entry; the predictor then runs a CRM checkpoint as that variant, loading the default SAM
    checkpoint when none is given."""
    spec = VariantSpec(name="mask-replace", model=CRM, config=CRMConfig, sam_stage=_SamMaskStage,
                       runs_checkpoints_of=("crm",), default_sam_checkpoint="weights/mobile_sam.pt")
    assert spec.sam_checkpoint(None) == PACKAGE_DIR / "weights" / "mobile_sam.pt"
    assert spec.sam_checkpoint("elsewhere.pt").name == "elsewhere.pt"
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    loaded = []

    def fake_load_sam(sam_type, checkpoint, device=None):
        loaded.append((sam_type, checkpoint))
        return build_tiny_sam()

    monkeypatch.setattr("sam_sr.sam.load_sam", fake_load_sam)
    torch.manual_seed(0)
    crm = build_model("crm", {**TINY, "mask_skip": True, "mask_skip_init": 8.0}).eval()
    ckpt = tmp_path / "crm.pt"
    save_checkpoint(ckpt, crm, "crm", crm.config.to_dict())
    r = Refiner.from_checkpoint(ckpt, variant="mask-replace", device="cpu", decode="contour:1",
                                scales=(1.0,), min_size=8)
    assert loaded == [("vit_t", PACKAGE_DIR / "weights" / "mobile_sam.pt")]
    img, mask = disk_photo(96, 128)
    res = r.predict(img, mask)
    out, info = res.mask, res.info
    assert info["sam"] == {"replaced": True}
    # the strong mask skip keeps the replaced mask, upsampled x2 to the image, away from its contour
    assert out[30:60, 40:80].all() and not out[:15].any()



def test_the_variant_example_of_the_architecture_page_runs(tmp_path, monkeypatch):
    """docs/ARCHITECTURE.md's "Adding a variant" code, run as written: its spec registered, a CRM
    checkpoint run as that variant with a tiny SAM (the bundled MobileSAM is replaced to stay fast)."""
    from tests.conftest import ROOT
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    code = text.split("### Adding a variant", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, "ARCHITECTURE.md", "exec"), scope)
    spec = scope["SPEC"]
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    monkeypatch.setattr("sam_sr.sam.load_sam", lambda sam_type, checkpoint, device=None: build_tiny_sam())
    torch.manual_seed(0)
    crm = build_model("crm", {**TINY, "mask_skip": True, "mask_skip_init": 8.0}).eval()
    ckpt = tmp_path / "crm.pt"
    save_checkpoint(ckpt, crm, "crm", crm.config.to_dict())
    r = Refiner.from_checkpoint(ckpt, variant="sam-box", device="cpu", decode="contour:1", scales=(1.0,),
                                min_size=8)
    img, mask = disk_photo(96, 128)
    res = r.predict(img, mask)
    assert res.mask.shape == (96, 128) and "sam_score" in res.info["sam"]
    assert build_model("sam-box", TINY).variant == "sam-box"
