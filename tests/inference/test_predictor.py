import numpy as np
import pytest
import torch

from sam_sr import CascadeConfig, Refiner, SamSrError
from sam_sr.checkpoint import save_checkpoint
from sam_sr.inference.cascade import cascade_refine, pad_inputs
from tests.conftest import TINY, disk_photo


@pytest.fixture
def refiner(tiny_checkpoint):
    return Refiner.from_checkpoint(tiny_checkpoint, device="cpu")


def test_refine_returns_full_resolution_binary_mask(refiner):
    img, mask = disk_photo(120, 90)
    out = refiner.refine(img, mask[::4, ::4])   # low-resolution coarse mask, same aspect ratio
    assert out.shape == (120, 90) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 255}
    res = refiner.predict(img, mask)
    binary, soft = res.mask, res.soft
    assert soft.shape == (120, 90) and soft.dtype == np.float32
    assert 0 <= soft.min() and soft.max() <= 1
    assert np.array_equal(binary, (soft >= 0.5).astype(np.uint8) * 255)


@pytest.mark.parametrize("value", [0, 255])
def test_empty_or_full_mask_comes_back_unchanged(refiner, value):
    img, _ = disk_photo()
    mask = np.full(img.shape[:2], value, np.uint8)
    out = refiner.refine(img, mask)
    assert np.array_equal(out, mask)
    few = np.zeros(img.shape[:2], np.uint8); few[5, 5] = 255
    assert np.array_equal(refiner.refine(img, few), few)


def test_grayscale_rgba_images_and_16bit_masks_are_accepted(refiner):
    img, mask = disk_photo(64, 64)
    gray = img[..., 0]
    rgba = np.dstack([img, np.full((64, 64), 255, np.uint8)])
    m16 = mask.astype(np.uint16) * 257
    for im, m in ((gray, mask), (rgba, m16), (img, np.dstack([mask] * 3))):
        assert refiner.refine(im, m).shape == (64, 64)


def test_mismatched_aspect_ratio_raises(refiner):
    img, mask = disk_photo(60, 120)
    with pytest.raises(SamSrError, match="aspect ratio"):
        refiner.refine(img, mask.T)


def test_cascade_steps_and_padding():
    cfg = CascadeConfig(min_size=224)
    assert cfg.steps(2328, 3492) == [0.125, 0.25, 0.5, 1.0]
    assert cfg.steps(321, 481) == [0.5, 1.0]
    assert cfg.steps(100, 100) == [1.0]
    (x,), (top, left, hp, wp) = pad_inputs([torch.rand(1, 3, 37, 50)], pad=16)
    assert hp % 8 == 0 and wp % 8 == 0 and hp >= 37 + 32 and wp >= 50 + 32
    assert x.shape[-2:] == (hp, wp)


def test_cascade_output_matches_the_full_image_region(tiny_model):
    """Padding must not shift the output: a padded input decoded over its inner region matches the
    decoder run on the unpadded features where the model is translation-equivariant (the interior)."""
    torch.manual_seed(0)
    img = torch.rand(1, 3, 64, 64)
    mask = (torch.rand(1, 1, 64, 64) > 0.5).float()
    out = cascade_refine(tiny_model, img, mask, CascadeConfig(scales=(1.0,), pad=0))
    with torch.no_grad():
        ref = torch.sigmoid(tiny_model(img, mask))
    assert torch.allclose(out, ref, atol=1e-5)


def test_wrong_checkpoints(tmp_path, tiny_model):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SamSrError, match="cannot read checkpoint"):
        Refiner.from_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save(tiny_model.state_dict(), foreign)
    with pytest.raises(SamSrError, match="not a sam-sr checkpoint"):
        Refiner.from_checkpoint(foreign)
    other = tmp_path / "v21.pt"
    save_checkpoint(other, tiny_model, "v2.1", tiny_model.config.to_dict())
    with pytest.raises(SamSrError, match="not 'crm'"):
        Refiner.from_checkpoint(other, variant="crm")
    mismatched = tmp_path / "mismatch.pt"
    save_checkpoint(mismatched, tiny_model, "crm", {**TINY, "fusion_channels": 32})
    with pytest.raises(SamSrError, match="does not match"):
        Refiner.from_checkpoint(mismatched)
    with pytest.raises(SamSrError, match="not found"):
        Refiner.from_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_inference_settings_are_defaults_and_overridable(tmp_path, tiny_model):
    p = tmp_path / "band.pt"
    save_checkpoint(p, tiny_model, "crm", tiny_model.config.to_dict(),
                    config={"inference": {"decode": "contour:4", "min_size": 64, "scales": [0.5, 1.0]}})
    r = Refiner.from_checkpoint(p, device="cpu")
    assert (r.cascade.decode, r.cascade.min_size, r.cascade.scales) == ("contour:4", 64, (0.5, 1.0))
    assert Refiner.from_checkpoint(p, device="cpu", decode="contour:9").cascade.decode == "contour:9"
    # another mode than the recommended one runs only when allowed (sam_sr.inference.decode_validity)
    assert Refiner.from_checkpoint(p, device="cpu", decode="full", allow_any_decode=True).cascade.decode == "full"
    # contour decoding keeps the coarse mask outside the band: far pixels are unchanged
    img, mask = disk_photo(96, 96)
    out = r.refine(img, mask)
    import cv2
    m = (mask > 0).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    far = cv2.dilate(m, k) == cv2.erode(m, k)
    np.testing.assert_array_equal(out[far] > 0, m[far] > 0)
    # a checkpoint without settings uses CascadeConfig's defaults
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, tiny_model, "crm", tiny_model.config.to_dict())
    assert Refiner.from_checkpoint(plain, device="cpu").cascade == CascadeConfig()
    for bad, match in (({"zoom": 2}, "unknown inference settings"), ({"decode": "spiral"}, "unknown decode")):
        q = tmp_path / "bad_settings.pt"
        save_checkpoint(q, tiny_model, "crm", tiny_model.config.to_dict(), config={"inference": bad})
        with pytest.raises(SamSrError, match=match):
            Refiner.from_checkpoint(q, device="cpu")


@pytest.mark.parametrize("field,value", [
    ("scales", (2.0,)), ("scales", (0.0, 1.0)), ("scales", "0.5"), ("scales", (True,)), ("min_size", -1),
    ("min_size", 1.5), ("pad", -2), ("chunk", 0), ("chunk", True), ("decode", "spiral"), ("decode", 3),
    ("fusion_patches", -1), ("encoder_tile", -8), ("encoder_tile", 100), ("tile_overlap", -1),
    ("margin", 0.5), ("margin", -0.1), ("margin", "0.1"), ("upsample_to", -1), ("flip", "yes"),
    ("pixel_tile", -1)])
def test_cascade_config_checks_every_field_and_names_it(field, value):
    with pytest.raises(SamSrError, match=f"CascadeConfig.{field}"):
        CascadeConfig(**{field: value})


def test_cascade_config_accepts_valid_values_and_is_immutable():
    cfg = CascadeConfig(scales=[0.25, 1], min_size=0, chunk=1, decode="contour:2", encoder_tile=256,
                        tile_overlap=64, margin=0, flip=True)
    assert cfg.scales == (0.25, 1.0)
    with pytest.raises(AttributeError):
        cfg.chunk = 5
    assert cfg.replace(chunk=7).chunk == 7 and cfg.chunk == 1
    with pytest.raises(SamSrError, match="CascadeConfig.chunk"):
        cfg.replace(chunk=0)


def test_refine_leaves_its_settings_alone_and_returns_the_run_info(refiner):
    img, mask = disk_photo(96, 128)
    before = refiner.cascade
    info = refiner.predict(img, mask).info
    assert refiner.cascade is before and refiner.cascade == before
    assert info["decoded_points"] > 0 and info["steps"][-1] == (96, 128)
    assert refiner.last_info == info
    res = refiner.predict(img, mask[::2, ::2])
    soft, info2 = res.soft, res.info
    assert soft.shape == (96, 128) and info2["steps"][-1] == (96, 128)
    res = refiner.predict(img, np.zeros((96, 128), np.uint8))
    empty, info3 = res.mask, res.info
    assert info3["decoded_points"] == 0 and not empty.any()


def test_soft_coarse_masks_are_refined_as_they_are(refiner):
    """Binary masks stay binary (resized ones too); soft maps keep their values unless a threshold is
    given; the refined result depends on the soft values, which the refiner was trained on."""
    from sam_sr.inference.predictor import prepare_mask
    img, mask = disk_photo(96, 128)
    small = mask[::4, ::4]
    assert set(np.unique(prepare_mask(small, (96, 128)))) == {0.0, 1.0}
    soft = (mask.astype(np.float32) / 255) * 0.5 + 0.3           # 0.3 outside, 0.8 inside
    p = prepare_mask(soft, (96, 128))
    assert np.allclose(p, soft) and np.allclose(np.unique(p), [0.3, 0.8])
    assert np.array_equal(prepare_mask(soft, (96, 128), threshold=0.5), (soft >= 0.5).astype(np.float32))
    with pytest.raises(SamSrError, match="threshold"):
        prepare_mask(soft, (96, 128), threshold=1.5)
    res = refiner.predict(img, soft)
    _, as_soft = res.mask, res.soft
    res = refiner.predict(img, soft, 0.5)
    _, as_binary = res.mask, res.soft
    res = refiner.predict(img, mask)
    _, binary_input = res.mask, res.soft
    assert np.array_equal(as_binary, binary_input)
    assert np.abs(as_soft - as_binary).max() > 1e-5        # the soft values reach the model


def test_a_bool_mask_prepares_like_its_float_copy():
    from sam_sr.inference.predictor import prepare_mask
    b = np.random.default_rng(0).random((30, 40)) > 0.5
    for hw in ((30, 40), (60, 80)):
        for t in (None, 0.3, 0.5, 0.9):
            a = prepare_mask(b, hw, t)
            assert a.dtype == np.float32 and np.array_equal(a, prepare_mask(b.astype(np.float32), hw, t))
    with pytest.raises(SamSrError, match="threshold"):
        prepare_mask(b, (30, 40), 1.5)


def test_a_blocky_mask_gets_a_band_as_wide_as_its_staircase():
    """A nearest-upsampled coarse mask (a staircase of period 8 px) is refined with a contour band of
    half a period each side (at the cascade's 960 px: 8 * 1.6 / 2 -> 7 px) and no margin; a mask drawn
    smooth, or a caller's own decode or margin, leaves the model's settings as they are."""
    from sam_sr.data.perturb import blocky, scale_gap
    from sam_sr.imaging import read_image, read_mask
    from tests.conftest import ROOT
    image = read_image(ROOT / "sam_sr/assets/coffee.jpg")                     # 600 x 400
    right = read_mask(ROOT / "tests/golden/coffee_refined_default.png") >= 0.5
    stairs = blocky(right, 8)
    crm = Refiner.from_checkpoint(variant="crm", device="cpu")
    res = crm.predict(image, stairs * 255)
    assert res.info["blocky"] == {"period": 8, "decode": "contour:7", "margin": 0.0}
    assert "blocky" not in crm.predict(image, scale_gap(right, 8) * 255).info
    own = Refiner.from_checkpoint(variant="crm", device="cpu", decode=crm.cascade.decode)
    res_own = own.predict(image, stairs * 255)
    assert "blocky" not in res_own.info
    assert not np.array_equal(res.soft, res_own.soft)        # the wider band reached the cascade
    assert "blocky" not in Refiner.from_checkpoint(variant="crm", device="cpu", margin=0.1).predict(
        image, stairs * 255).info
    off = Refiner.from_checkpoint(variant="crm", device="cpu", blocky=False).predict(image, stairs * 255)
    assert "blocky" not in off.info and np.array_equal(off.soft, res_own.soft)   # the model's own settings
