"""The model shipped in the package: size, config, and the decode modes on real photos."""
import numpy as np
import pytest

from sam_sr import Refiner
from sam_sr.config import load_config
from sam_sr.data import load_samples
from sam_sr.evaluation.metrics import iou
from sam_sr.imaging.read import read_image, read_mask
from sam_sr.inference.predictor import DEFAULT_CHECKPOINT
from tests.conftest import ROOT, SHARED_DATA, needs_shared

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="default model not built")


def test_the_default_is_v5_edge_v5s_region_step_with_the_edge_boundary_step(data_env):
    """The default model (sam_sr_v5_edge.pt, run as v5-edge) is v5's file (v4's region network and a
    trained decision, the settings of configs/recipes/v5.yaml) with two changes: its boundary step is
    the edge-trained CRM (not the shipped crm_r18.pt, which stays v5's), and the decision's ``opens``
    rule is set to never. v5 (sam_sr_v5.pt) keeps the shipped CRM; run as --variant v4 it is v4."""
    import torch
    assert DEFAULT_CHECKPOINT.stat().st_size <= 25 * 2**20
    default = Refiner.from_checkpoint(device="cpu")
    v5 = Refiner.from_checkpoint(variant="v5", device="cpu")
    crm = Refiner.from_checkpoint(variant="crm", device="cpu")
    assert default.info["variant"] == "v5-edge" and default.model.variant == "v5" and default.sam_inputs is not None
    assert default.info["checkpoint"] == str(DEFAULT_CHECKPOINT)          # the public constant names its file
    mine, theirs, crm_sd = default.model.state_dict(), v5.model.state_dict(), crm.model.state_dict()
    own = {k for k in mine if k.startswith(("region.", "decision."))}
    assert own and all(torch.equal(mine[k], theirs[k]) for k in own)
    assert all(torch.equal(theirs[k], crm_sd[k]) for k in theirs if k not in own)        # v5: the shipped CRM
    assert any(not torch.equal(mine[k], crm_sd[k]) for k in mine if k not in own)        # default: another
    assert default.model.settings()["opens"] > 1 and v5.model.settings()["opens"] == 0
    assert {k: v for k, v in default.model.settings().items() if k != "opens"} == \
        {k: v for k, v in v5.model.settings().items() if k != "opens"}
    assert int(default.model.decision.change.depth) > 0 and default.model.settings()["change_trees"][0] > 1
    import yaml
    recipe = yaml.safe_load((ROOT / "configs" / "recipes" / "v5.yaml").read_text())
    for r in (default, v5):
        assert all(getattr(r.cascade, k) == v for k, v in recipe["export"]["inference"].items()), r.cascade.settings()
    v4 = Refiner.from_checkpoint(variant="v4", device="cpu")
    assert type(v4.sam_inputs.stage).__name__ == "RegionStage" and v4.info["variant"] == "v4"


def test_shipped_checkpoint_is_small_and_matches_its_config(data_env):
    r = Refiner.from_checkpoint(variant="crm", device="cpu")
    last_stage = load_config(ROOT / "configs" / "crm_r18" / "crm_r18_pixel_sod2.yaml")   # its final training stage
    mine = r.model.config.to_dict()
    assert mine["pixel_head"] == last_stage["model"]["pixel_head"] > 0
    for name in ("crm_r18.yaml", "crm_r18_band.yaml", "crm_r18_band_skip.yaml", "crm_r18_band_narrow.yaml",
                 "crm_r18_pixel.yaml", "crm_r18_pixel_x2.yaml", "crm_r18_pixel_sod.yaml"):   # earlier stages (1-3c: no pixel head)
        cfg = load_config(ROOT / "configs" / "crm_r18" / name)["model"]
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
    # modes the CRM was not trained for (it refuses them by default): they agree with each other
    full = Refiner.from_checkpoint(variant="crm", device="cpu", decode="full", allow_any_decode=True)
    fast = Refiner.from_checkpoint(variant="crm", device="cpu", decode=mode, allow_any_decode=True)
    scores = []
    for s in samples:
        image, coarse = read_image(s.image), read_mask(s.coarse["dss"]) >= 0.5
        res = fast.predict(image, coarse)
        fast_out, fast_info = res.mask, res.info
        res = full.predict(image, coarse)
        full_out, full_info = res.mask, res.info
        scores.append(iou(fast_out, full_out))
        assert fast_info["decoded_points"] < full_info["decoded_points"]
    assert np.mean(scores) >= 0.995, scores


GOLDEN = ROOT / "tests" / "golden"
ASSETS = ROOT / "sam_sr" / "assets"
#: golden outputs per model: the default (v5-edge) and the CRM band refiner (--variant crm), in fp32
#: (the golden files' precision: ``auto`` would be bf16 on a CPU with AVX-512 BF16 and fp32 elsewhere)
MODELS = {"default": {"precision": "fp32"}, "crm": {"variant": "crm", "precision": "fp32"}}
#: bf16 (SAM's and the cascade's encoders under bfloat16 autocast) against the fp32 golden outputs,
#: measured with AMX (Intel Xeon): default (2026-12-07) IoU 0.99984, mBA 0.9939, foreground 4e-5; crm
#: (2026-12-03) 0.99998, 0.9993, 8e-6; with AVX-512 BF16 and no AMX (AMD EPYC, 2026-12-07): default 0.99973,
#: 0.9894, 4e-5 (oneDNN's bf16 kernels differ between the two, so the tolerance covers both)
BF16_TOLERANCE = {"iou": 0.999, "mba": 0.985, "fg_delta": 5e-4}


def golden_check(refiner, name: str) -> dict:
    """A shipped model's refinement of the bundled example against its committed golden outputs
    (tests/golden/README.md): ``{"iou", "mba", "fg_delta", "soft_levels", "ok"}``."""
    from PIL import Image

    from sam_sr.evaluation.metrics import boundary_accuracy
    image, coarse = read_image(ASSETS / "coffee.jpg"), read_mask(ASSETS / "coffee_coarse.png")
    res = refiner.predict(image, coarse)
    binary, soft = res.mask, res.soft
    gold = np.asarray(Image.open(GOLDEN / f"coffee_refined_{name}.png")) > 0
    gold_soft = np.asarray(Image.open(GOLDEN / f"coffee_refined_{name}_soft.png")).astype(int)
    out = binary > 0
    r = {"iou": iou(out, gold), "mba": boundary_accuracy(out, gold),
         "fg_delta": abs(float(out.mean()) - float(gold.mean())),
         "soft_levels": int(np.abs((np.clip(soft, 0, 1) * 255 + 0.5).astype(int) - gold_soft).max())}
    r["ok"] = r["iou"] >= 0.995 and r["mba"] >= 0.998 and r["fg_delta"] <= 5e-4 and r["soft_levels"] <= 2
    return r


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_shipped_models_reproduce_their_golden_output(name):
    result = golden_check(Refiner.from_checkpoint(device="cpu", **MODELS[name]), name)
    assert result["ok"], result


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_bf16_agrees_with_the_golden_output_within_its_tolerance(name):
    """``--precision bf16`` (``auto``'s choice on CPUs with AVX-512 BF16 or AMX) is not equal to fp32:
    it must stay within :data:`BF16_TOLERANCE` of the fp32 golden output (not its 2/255 soft check)."""
    r = golden_check(Refiner.from_checkpoint(device="cpu", **{**MODELS[name], "precision": "bf16"}), name)
    assert r["iou"] >= BF16_TOLERANCE["iou"] and r["mba"] >= BF16_TOLERANCE["mba"], r
    assert r["fg_delta"] <= BF16_TOLERANCE["fg_delta"], r
    assert r["soft_levels"] > 0, r


@pytest.mark.slow
@pytest.mark.parametrize("name,perturb", [("crm", "encoder_x1.01"), ("crm", "no_pixel_head"),
                                          ("default", "encoder_x1.01"), ("default", "region_x1.01"),
                                          ("default", "decision_off")])
def test_the_golden_check_fails_for_a_slightly_changed_model(name, perturb):
    """The check can fail: a 1% change of the boundary encoder's or the region network's weights, or
    the pixel head switched off (the CRM's last addition), is caught."""
    import torch
    r = Refiner.from_checkpoint(device="cpu", **MODELS[name])
    with torch.no_grad():
        if perturb == "no_pixel_head":
            r.model.pixel_head.out.weight.zero_()
            r.model.pixel_head.out.bias.zero_()
        elif perturb == "decision_off":                  # the decision refuses every change
            r.model.decision.change.baseline.fill_(-50.0)
        else:
            part = r.model.region if perturb.startswith("region") else r.model.encoder
            for p in part.parameters():
                p.mul_(1.01)
    result = golden_check(r, name)
    assert not result["ok"], result


@pytest.mark.slow
def test_the_default_corrects_regions_of_the_example():
    """The example's coarse mask misses the saucer's upper-left rim (scripts/make_example_mask.py):
    the default model adds it, the CRM band refiner cannot (it only re-draws the contour)."""
    from PIL import Image
    coarse = np.asarray(Image.open(ASSETS / "coffee_coarse.png").resize((600, 400), Image.BILINEAR)) >= 128
    default = np.asarray(Image.open(GOLDEN / "coffee_refined_default.png")) > 0
    crm = np.asarray(Image.open(GOLDEN / "coffee_refined_crm.png")) > 0
    rim = np.zeros_like(coarse)
    rim[90:200, 90:170] = True              # the saucer's upper-left rim, outside the coarse mask
    assert coarse[rim].mean() < 0.5
    assert default[rim].mean() - coarse[rim].mean() > 0.2 > crm[rim].mean() - coarse[rim].mean()


def harm_check(refiner) -> dict:
    """The default's harm on the bundled example, beside its gains: the golden refined mask given back
    as the coarse mask (a right mask) must come back at IoU >= 0.99 with itself, and its x8 scale gap
    (right but blocky) no lower in IoU (0.001 of rounding) nor mBA than the blocky mask itself:
    ``{"right_iou", "gap_iou", "gap_coarse_iou", "gap_mba", "gap_coarse_mba", "ok"}``."""
    from PIL import Image

    from sam_sr.data.perturb import scale_gap
    from sam_sr.evaluation.metrics import boundary_accuracy
    image = read_image(ASSETS / "coffee.jpg")
    right = np.asarray(Image.open(GOLDEN / "coffee_refined_default.png")) > 0
    gap = scale_gap(right.astype(np.uint8), 8) > 0.5
    out_right = refiner.refine(image, right.astype(np.uint8) * 255) > 0
    out_gap = refiner.refine(image, gap.astype(np.uint8) * 255) > 0
    r = {"right_iou": iou(out_right, right), "gap_iou": iou(out_gap, right), "gap_coarse_iou": iou(gap, right),
         "gap_mba": boundary_accuracy(out_gap, right), "gap_coarse_mba": boundary_accuracy(gap, right)}
    r["ok"] = r["right_iou"] >= 0.99 and r["gap_iou"] >= r["gap_coarse_iou"] - 1e-3 and r["gap_mba"] >= r["gap_coarse_mba"]
    return r


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_default_leaves_a_right_mask_and_a_blocky_right_mask_no_worse(precision):
    assert harm_check(Refiner.from_checkpoint(device="cpu", precision=precision))["ok"]


@pytest.mark.slow
def test_the_harm_check_fails_without_the_decision():
    """v4 (the same weights with every region change taken and its wide band on every photo) fails it."""
    result = harm_check(Refiner.from_checkpoint(device="cpu", variant="v4"))
    assert not result["ok"], result


def _coffee():
    from PIL import Image
    image = read_image(ASSETS / "coffee.jpg")
    coarse = np.asarray(Image.open(ASSETS / "coffee_coarse.png").resize(image.shape[1::-1], Image.BILINEAR)) >= 128
    return image, coarse


@pytest.mark.slow
def test_keep_regions_is_the_default_taking_no_change_without_running_sam():
    """``regions="keep"`` loads no SAM and refines exactly as the default does when its decision takes
    no change (photo threshold 1): the coarse mask thresholded at 0.5, the ``kept`` cascade settings."""
    from sam_sr.data.perturb import scale_gap
    keep = Refiner.from_checkpoint(device="cpu", precision="fp32", regions="keep")
    assert keep.sam_inputs is None and keep.info["regions"] == "keep"
    default = Refiner.from_checkpoint(device="cpu", precision="fp32")
    kept = default.sam_inputs.stage.model.settings()["kept"]
    assert kept and all(keep.cascade.settings()[k] == v for k, v in kept.items())
    assert default.cascade.decode != keep.cascade.decode            # the kept settings are not the default's
    stage_model = default.sam_inputs.stage.model
    stage_model.config.decision = {**dict(stage_model.config.decision), "photo": 1.0}   # no change ever taken
    image, coarse = _coffee()
    soft = np.clip(coarse * 0.8 + 0.1, 0, 1).astype(np.float32)       # a soft map: thresholded in both
    for c in (coarse, scale_gap(coarse.astype(np.uint8), 8) > 0, soft):
        a, b = keep.predict(image, c), default.predict(image, c)
        assert b.info["sam"]["taken"] == 0
        assert np.array_equal(a.mask, b.mask) and np.allclose(a.soft, b.soft, atol=1e-6)


@pytest.mark.slow
def test_keep_regions_changes_the_coarse_mask_only_along_its_boundary():
    """The example's coarse mask misses the saucer's rim, which the default adds: with regions kept,
    nothing farther than a few pixels from the coarse contour changes, and the harm check holds."""
    import cv2
    from PIL import Image
    keep = Refiner.from_checkpoint(device="cpu", regions="keep")
    image, coarse = _coffee()
    out = keep.refine(image, coarse) > 0
    default = np.asarray(Image.open(GOLDEN / "coffee_refined_default.png")) > 0
    changed = out != coarse
    inside = cv2.distanceTransform(coarse.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~coarse).astype(np.uint8), cv2.DIST_L2, 3)
    dist = np.maximum(inside, outside)                               # px to the coarse contour
    assert changed.any() and dist[changed].max() <= 4, dist[changed].max()
    added_by_default = (default & ~coarse).sum()
    assert (out & ~coarse).sum() < 0.2 * added_by_default               # the rim stays out
    assert harm_check(keep)["ok"]


@pytest.mark.parametrize("variant,text", [("crm", "has none"), ("v2.1", "feeds SAM")])
def test_keep_regions_is_refused_where_there_is_no_region_step_to_skip(variant, text):
    from sam_sr.errors import SamSrError
    from sam_sr.inference.predictor import _keep_regions
    from sam_sr.variants import build_model, get_variant
    spec = get_variant(variant)
    model = build_model(variant, {})
    with pytest.raises(SamSrError, match=text):
        _keep_regions(spec, model, None, {})


def test_an_unknown_regions_mode_is_refused_before_loading():
    from sam_sr.errors import SamSrError
    with pytest.raises(SamSrError, match="unknown regions mode"):
        Refiner.from_checkpoint("no/such/file.pt", regions="drop")


def blocky_check(refiner, factor: int = 8) -> dict:
    """The default on a blocky right mask: the example's golden refined mask nearest-upsampled from
    1/``factor`` (a staircase) must come back no lower in IoU and at least 4 mBA points higher (the
    band for blocky masks gives +6.3 on it at x8, fp32 and bf16; without it +0.8)."""
    from PIL import Image

    from sam_sr.data.perturb import blocky
    from sam_sr.evaluation.metrics import boundary_accuracy
    image = read_image(ASSETS / "coffee.jpg")
    right = np.asarray(Image.open(GOLDEN / "coffee_refined_default.png")) > 0
    stairs = blocky(right, factor) > 0
    out = refiner.refine(image, stairs.astype(np.uint8) * 255) > 0
    r = {"iou": iou(out, right), "coarse_iou": iou(stairs, right), "mba": boundary_accuracy(out, right),
         "coarse_mba": boundary_accuracy(stairs, right)}
    r["ok"] = r["iou"] >= r["coarse_iou"] and r["mba"] >= r["coarse_mba"] + 0.04
    return r


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_default_draws_a_blocky_right_mask_onto_the_edges(precision):
    assert blocky_check(Refiner.from_checkpoint(device="cpu", precision=precision))["ok"]


@pytest.mark.slow
def test_the_blocky_check_fails_without_the_band():
    result = blocky_check(Refiner.from_checkpoint(device="cpu", blocky=False))
    assert not result["ok"], result
