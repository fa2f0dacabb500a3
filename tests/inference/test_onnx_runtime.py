"""ONNX Runtime: the exported networks give torch's outputs within a stated tolerance, through the
same cascade (dense and sparse steps, the pixel head, the region step and SAM's encoder)."""
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from sam_sr import Refiner, SamSrError  # noqa: E402
from sam_sr.imaging import read_image, read_mask  # noqa: E402
from sam_sr.inference.onnx_runtime import TOLERANCE, export_onnx  # noqa: E402
from tests.conftest import ROOT, disk_photo  # noqa: E402

#: Largest difference of the refined probabilities between onnxruntime and torch that the tests accept.
SOFT_TOLERANCE = 1e-4


def test_a_tiny_refiner_runs_the_same_under_onnxruntime(tiny_checkpoint, tmp_path):
    torch_r = Refiner.from_checkpoint(tiny_checkpoint, device="cpu", decode="contour:3", min_size=32, precision="fp32")
    manifest = export_onnx(torch_r.model, tmp_path / "onnx", tiny_checkpoint)
    assert set(manifest["files"]) >= {"encoder", "decoder_mlp"} and max(manifest["max_abs_diff"].values()) <= TOLERANCE
    onnx_r = Refiner.from_checkpoint(tiny_checkpoint, device="cpu", decode="contour:3", min_size=32,
                                     runtime="onnx", onnx_dir=tmp_path / "onnx")
    for h, w in ((96, 128), (200, 150)):
        img, mask = disk_photo(h, w)
        a, b = torch_r.predict(img, mask), onnx_r.predict(img, mask)
        assert np.abs(a.soft - b.soft).max() <= SOFT_TOLERANCE and np.array_equal(a.mask, b.mask)
    assert "onnxruntime" in onnx_r.info["runtime"]


def test_a_refiner_with_image_features_exports_them(tmp_path):
    """The encoder's ONNX file holds the pretrained image features (MobileSAM's TinyViT stages)."""
    import torch

    from sam_sr.checkpoint import save_checkpoint
    from sam_sr.models.crm import CRM, CRMConfig
    from sam_sr.sam.loader import BUNDLED_SAM
    torch.manual_seed(0)
    model = CRM(CRMConfig(out_indices=(0, 1, 3), branch_channels=(8, 8, 8), fusion_channels=16,
                          decoder_hidden=(16, 16), image_features="tinyvit",
                          image_features_checkpoint=str(BUNDLED_SAM))).eval()
    for conv in model.feature_proj:
        torch.nn.init.normal_(conv.weight, std=0.5)
    ck = tmp_path / "fed.pt"
    save_checkpoint(ck, model, "crm", model.config.to_dict(), iteration=0)
    torch_r = Refiner.from_checkpoint(ck, device="cpu", decode="contour:3", min_size=32, precision="fp32")
    manifest = export_onnx(torch_r.model, tmp_path / "onnx", ck)
    assert manifest["max_abs_diff"]["encoder"] <= TOLERANCE
    onnx_r = Refiner.from_checkpoint(ck, device="cpu", decode="contour:3", min_size=32,
                                     runtime="onnx", onnx_dir=tmp_path / "onnx")
    img, mask = disk_photo(96, 128)
    a, b = torch_r.predict(img, mask), onnx_r.predict(img, mask)
    assert np.abs(a.soft - b.soft).max() <= SOFT_TOLERANCE and np.array_equal(a.mask, b.mask)


def test_an_export_of_another_checkpoint_is_refused(tiny_checkpoint, tmp_path, tiny_model):
    r = Refiner.from_checkpoint(tiny_checkpoint, device="cpu")
    export_onnx(r.model, tmp_path / "onnx", tiny_checkpoint)
    m = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    m["checkpoint_sha256"] = "0" * 64
    (tmp_path / "onnx" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SamSrError, match="another checkpoint"):
        Refiner.from_checkpoint(tiny_checkpoint, device="cpu", runtime="onnx", onnx_dir=tmp_path / "onnx")
    with pytest.raises(SamSrError, match="no ONNX export"):
        Refiner.from_checkpoint(tiny_checkpoint, device="cpu", runtime="onnx", onnx_dir=tmp_path / "none")
    with pytest.raises(SamSrError, match="already holds"):
        export_onnx(r.model, tmp_path / "onnx", tiny_checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("variant", [None, "crm"])
def test_the_shipped_models_agree_with_torch_on_the_golden_photo(tmp_path, variant):
    """The bundled example (the golden check's photo): the default (MobileSAM's encoder, the region
    network and the decision included) and the CRM, onnxruntime against torch."""
    image = read_image(ROOT / "sam_sr" / "assets" / "coffee.jpg")
    coarse = read_mask(ROOT / "sam_sr" / "assets" / "coffee_coarse.png")
    torch_r = Refiner.from_checkpoint(device="cpu", variant=variant, precision="fp32")
    sam = getattr(torch_r.sam_inputs, "source", None)
    manifest = export_onnx(torch_r.model, tmp_path / "onnx", torch_r.info["checkpoint"], getattr(sam, "sam", None))
    if variant is None:
        assert "region" in manifest["files"] and "sam_encoder" in manifest["files"]
    onnx_r = Refiner.from_checkpoint(device="cpu", variant=variant, runtime="onnx", onnx_dir=tmp_path / "onnx")
    a, b = torch_r.predict(image, coarse), onnx_r.predict(image, coarse)
    assert np.abs(a.soft - b.soft).max() <= SOFT_TOLERANCE and np.array_equal(a.mask, b.mask)


def test_sam_in_bf16_exports_its_float32_encoder(tiny_checkpoint, tmp_path):
    """A refiner loaded in bf16 (``auto`` on AVX-512 BF16 CPUs) wraps SAM's image encoder in bfloat16
    autocast; the ONNX export takes the float32 encoder inside the wrapper."""
    import torch

    from sam_sr.sam import build_tiny_sam
    from sam_sr.sam.loader import _Bf16Encoder, set_encoder_precision
    sam = build_tiny_sam(image_size=256)
    set_encoder_precision(sam, "bf16")
    assert isinstance(sam.image_encoder, _Bf16Encoder)
    r = Refiner.from_checkpoint(tiny_checkpoint, device="cpu")
    manifest = export_onnx(r.model, tmp_path / "onnx", tiny_checkpoint, sam)
    assert manifest["files"].get("sam_encoder") == "sam_encoder.onnx", manifest["sam_encoder_note"]
    assert manifest["max_abs_diff"]["sam_encoder"] <= TOLERANCE
    assert isinstance(sam.image_encoder, _Bf16Encoder) and torch.is_grad_enabled()
