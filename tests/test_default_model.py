"""The model shipped in the package: size, config, and the decode modes on real photos."""
import numpy as np
import pytest

from sam_sr import Refiner
from sam_sr.config import load_config
from sam_sr.data import load_samples
from sam_sr.inference.predictor import DEFAULT_CHECKPOINT
from sam_sr.io import read_image, read_mask
from sam_sr.metrics import iou
from tests.conftest import ROOT, SHARED_DATA, needs_shared

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="default model not built")


def test_shipped_checkpoint_is_small_and_matches_its_config(data_env):
    assert DEFAULT_CHECKPOINT.stat().st_size <= 25 * 2**20
    r = Refiner.from_checkpoint(variant="crm", device="cpu")
    last_stage = load_config(ROOT / "configs" / "crm_r18_pixel_sod2.yaml")   # its final training stage
    mine = r.model.config.to_dict()
    assert mine["pixel_head"] == last_stage["model"]["pixel_head"] > 0
    for name in ("crm_r18.yaml", "crm_r18_band.yaml", "crm_r18_band_skip.yaml", "crm_r18_band_narrow.yaml",
                 "crm_r18_pixel.yaml", "crm_r18_pixel_x2.yaml", "crm_r18_pixel_sod.yaml"):   # earlier stages (1-3c: no pixel head)
        cfg = load_config(ROOT / "configs" / name)["model"]
        assert all(mine[k] == v for k, v in cfg.items() if k != "pretrained"), (name, mine, cfg)
    # the recommended inference settings it ships with are the ones its config documents
    settings = {k: v for k, v in last_stage["inference"].items() if k != "valid_decode"}
    assert settings and all(getattr(r.cascade, k) == v for k, v in settings.items()), r.cascade.settings()
    assert r.info["valid_decode"] == last_stage["inference"]["valid_decode"] == ["contour"]


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("mode", ["strided:4", "hierarchical:4"])  # strides for ~480 px photos
def test_fast_decoding_agrees_with_full_on_real_photos(mode):
    samples = load_samples({"layout": "generic", "root": SHARED_DATA / "sod",
                            "ids_file": ROOT / "configs/splits/sod_eval.txt"})[:4]
    # modes the shipped model was not trained for (it refuses them by default): they agree with each other
    full = Refiner.from_checkpoint(device="cpu", decode="full", allow_any_decode=True)
    fast = Refiner.from_checkpoint(device="cpu", decode=mode, allow_any_decode=True)
    scores = []
    for s in samples:
        image, coarse = read_image(s.image), read_mask(s.coarse["dss"]) >= 0.5
        fast_out, fast_info = fast.refine(image, coarse, return_info=True)
        full_out, full_info = full.refine(image, coarse, return_info=True)
        scores.append(iou(fast_out, full_out))
        assert fast_info["decoded_points"] < full_info["decoded_points"]
    assert np.mean(scores) >= 0.995, scores


GOLDEN = ROOT / "tests" / "golden"
ASSETS = ROOT / "sam_sr" / "assets"


def golden_check(refiner) -> dict:
    """The shipped model's refinement of the bundled example against the committed golden outputs
    (tests/golden/README.md): ``{"iou", "mba", "fg_delta", "soft_levels", "ok"}``."""
    from PIL import Image

    from sam_sr.metrics import boundary_accuracy
    image, coarse = read_image(ASSETS / "coffee.jpg"), read_mask(ASSETS / "coffee_coarse.png")
    binary, soft = refiner.refine(image, coarse, return_soft=True)
    gold = np.asarray(Image.open(GOLDEN / "coffee_refined.png")) > 0
    gold_soft = np.asarray(Image.open(GOLDEN / "coffee_refined_soft.png")).astype(int)
    out = binary > 0
    r = {"iou": iou(out, gold), "mba": boundary_accuracy(out, gold),
         "fg_delta": abs(float(out.mean()) - float(gold.mean())),
         "soft_levels": int(np.abs((np.clip(soft, 0, 1) * 255 + 0.5).astype(int) - gold_soft).max())}
    r["ok"] = r["iou"] >= 0.995 and r["mba"] >= 0.998 and r["fg_delta"] <= 5e-4 and r["soft_levels"] <= 2
    return r


def test_shipped_model_reproduces_its_golden_output():
    result = golden_check(Refiner.from_checkpoint(device="cpu"))
    assert result["ok"], result


@pytest.mark.parametrize("perturb", ["encoder_x1.01", "no_pixel_head"])
def test_the_golden_check_fails_for_a_slightly_changed_model(perturb):
    """The check can fail: a 1% change of the encoder's weights, or the pixel head switched off (the
    shipped model minus its last addition), is caught."""
    import torch
    r = Refiner.from_checkpoint(device="cpu")
    with torch.no_grad():
        if perturb == "encoder_x1.01":
            for p in r.model.encoder.parameters():
                p.mul_(1.01)
        else:
            r.model.pixel_head.out.weight.zero_()
            r.model.pixel_head.out.bias.zero_()
    result = golden_check(r)
    assert not result["ok"], result
