"""Decode modes a checkpoint was not trained for are refused, or run with a warning when allowed."""
import logging

import pytest

from sam_sr import Refiner, SamSrError
from sam_sr.checkpoint import save_checkpoint
from sam_sr.inference.decode_validity import check_decode, parse_modes, valid_modes
from sam_sr.inference.predictor import DEFAULT_CHECKPOINT
from sam_sr.training.export import export_checkpoint
from tests.conftest import disk_photo


def test_valid_modes_come_from_the_declaration_then_the_recommended_mode():
    assert valid_modes({"config": {"inference": {"valid_decode": ["contour", "bbox:8"], "decode": "contour:2"}}}) \
        == ["contour", "bbox"]
    assert valid_modes({"config": {"inference": {"decode": "contour:4"}}}) == ["contour"]
    assert valid_modes({"config": {"inference": {}}}) is None
    assert valid_modes({}) is None


@pytest.mark.parametrize("value,match", [([], "non-empty list"), (["spiral"], "unknown decode mode"),
                                         (3, "non-empty list"), ([1], "non-empty list")])
def test_malformed_declarations_are_refused(value, match):
    with pytest.raises(SamSrError, match=match):
        parse_modes(value)


def test_check_decode_refuses_naming_the_valid_modes_or_warns_when_allowed(caplog):
    check_decode("contour:16", ["contour"])                   # the parameter is free
    check_decode("full", None)                                # nothing declared: every mode
    with pytest.raises(SamSrError, match=r"'strided:4' .* \(valid: contour, bbox\).*--allow-any-decode"):
        check_decode("strided:4", ["contour", "bbox"], "checkpoint x.pt")
    with caplog.at_level(logging.WARNING, logger="sam_sr"):
        check_decode("full", ["contour"], "checkpoint x.pt", allow=True)
    assert "warning: decode mode 'full'" in caplog.text and "valid: contour" in caplog.text


def test_a_checkpoint_refuses_modes_it_does_not_declare(tmp_path, tiny_model, caplog):
    p = tmp_path / "band.pt"
    save_checkpoint(p, tiny_model, "crm", tiny_model.config.to_dict(),
                    config={"inference": {"decode": "contour:2", "valid_decode": ["contour", "bbox"]}})
    assert Refiner.from_checkpoint(p, device="cpu", decode="bbox:4").info["valid_decode"] == ["contour", "bbox"]
    for mode in ("full", "strided:4", "hierarchical:8"):
        with pytest.raises(SamSrError, match="valid: contour, bbox"):
            Refiner.from_checkpoint(p, device="cpu", decode=mode)
    with caplog.at_level(logging.WARNING, logger="sam_sr"):
        r = Refiner.from_checkpoint(p, device="cpu", decode="full", allow_any_decode=True)
    assert r.cascade.decode == "full" and "not one checkpoint" in caplog.text
    img, mask = disk_photo(48, 64)
    assert r.refine(img, mask).shape == (48, 64)


def test_export_writes_the_declaration(tmp_path, tiny_checkpoint):
    dst = tmp_path / "exported.pt"
    export_checkpoint(tiny_checkpoint, dst, {"decode": "contour:2", "valid_decode": "contour,bbox"})
    assert Refiner.from_checkpoint(dst, device="cpu").info["valid_decode"] == ["contour", "bbox"]
    with pytest.raises(SamSrError, match="unknown decode mode"):
        export_checkpoint(tiny_checkpoint, tmp_path / "x.pt", {"valid_decode": ["spiral"]})
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="default model not built")
@pytest.mark.parametrize("mode", ["full", "strided:4", "hierarchical"])
def test_the_shipped_model_refuses_the_modes_that_give_garbage_with_it(mode):
    with pytest.raises(SamSrError, match=r"\(valid: contour\)"):
        Refiner.from_checkpoint(device="cpu", decode=mode)


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="default model not built")
def test_the_shipped_model_s_full_mode_is_garbage_on_the_example():
    """Why the CRM band refiner (the default's boundary step) declares contour only: on the bundled
    example, full decoding marks far more pixels as foreground than the coarse mask and the contour
    mode do."""
    from sam_sr.imaging.read import read_image, read_mask
    from tests.conftest import ROOT
    image = read_image(ROOT / "sam_sr/assets/coffee.jpg")
    coarse = read_mask(ROOT / "sam_sr/assets/coffee_coarse.png")
    default = Refiner.from_checkpoint(variant="crm", device="cpu").refine(image, coarse)
    full = Refiner.from_checkpoint(variant="crm", device="cpu", decode="full", allow_any_decode=True).refine(image, coarse)
    share = {name: float((m > 0).mean()) for name, m in (("coarse", coarse >= 0.5), ("default", default), ("full", full))}
    assert abs(share["default"] - share["coarse"]) < 0.02, share
    assert share["full"] > share["default"] + 0.2, share
