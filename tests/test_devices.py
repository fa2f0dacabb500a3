"""The precision a device computes in: ``auto`` resolves by the hardware, ``$SAM_SR_PRECISION`` sets the
default, and SAM's image encoder follows."""
import numpy as np
import pytest
import torch

from sam_sr import devices
from sam_sr.devices import PRECISION_ENV, default_precision, native_bf16, resolve_precision
from sam_sr.errors import SamSrError
from sam_sr.inference.cascade import CascadeConfig
from sam_sr.sam import build_tiny_sam
from sam_sr.sam.loader import plain_encoder, set_encoder_precision


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_where_the_device_computes_it_natively(monkeypatch, native, expected):
    monkeypatch.setattr(devices, "native_bf16", lambda device="cpu": native)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_an_unknown_precision_is_refused():
    with pytest.raises(SamSrError, match="unknown precision 'fp16'"):
        resolve_precision("fp16")
    with pytest.raises(SamSrError, match="precision"):
        CascadeConfig(precision="half")


def test_native_bf16_answers_for_this_machine_and_never_for_other_device_types():
    assert isinstance(native_bf16("cpu"), bool)
    assert native_bf16("meta") is False


def test_the_environment_sets_the_default_precision(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert default_precision() == "auto" and CascadeConfig().precision == "auto"
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert CascadeConfig().precision == "fp32"
    assert CascadeConfig(precision="bf16").precision == "bf16"      # an explicit setting wins
    monkeypatch.setenv(PRECISION_ENV, "float16")
    with pytest.raises(SamSrError, match="SAM_SR_PRECISION='float16'"):
        default_precision()


def test_sam_encoder_in_bf16_returns_float32_close_to_fp32_and_unwraps():
    torch.manual_seed(0)
    sam = build_tiny_sam(image_size=256)
    x = torch.randn(1, 3, 256, 256)
    base = sam.image_encoder
    with torch.no_grad():
        ref = base(x)
        assert set_encoder_precision(sam, "bf16") == "bf16"
        out = sam.image_encoder(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = float((out - ref).norm() / ref.norm())
    assert 0 < err < 0.05, err               # bfloat16 rounding: close, not equal
    assert plain_encoder(sam) is base
    assert set_encoder_precision(sam, "bf16") == "bf16" and plain_encoder(sam) is base   # not wrapped twice
    assert set_encoder_precision(sam, "fp32") == "fp32" and sam.image_encoder is base
    with torch.no_grad():
        assert np.array_equal(sam.image_encoder(x).numpy(), ref.numpy())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_default_model_runs_sam_in_the_cascades_precision(precision):
    from sam_sr import Refiner
    from sam_sr.sam.loader import _Bf16Encoder
    r = Refiner.from_checkpoint(device="cpu", precision=precision)
    assert r.info["precision"] == r.info["sam_precision"] == precision
    assert isinstance(r.sam_inputs.source.sam.image_encoder, _Bf16Encoder) == (precision == "bf16")
