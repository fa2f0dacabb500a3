"""Region-step data (stored SAM answers) and training: records, resumable and deterministic runs."""
import numpy as np
import pytest
import torch

from sam_sr import SamSrError
from sam_sr.data.perturb import mask_iou
from sam_sr.sam import build_tiny_sam, predictor
from sam_sr.sam.cache import SamCache
from sam_sr.sam.prompt import PromptConfig
from sam_sr.variants.v4.data import RegionSynthConfig, build_region_data, draw_modes, frame_grid, synthesize
from tests.conftest import ROOT, disk_photo, save_pair

TINY_REGION = {"widths": [4, 8, 8], "sam_channels": 32, "sam_proj": 8, "hidden": 16, "dilations": [1],
               "heads": 2, "sam_inputs": 2}
PROMPTS = [PromptConfig(rounds=1, mask=False), PromptConfig(rounds=1)]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("region")
    for i in range(3):
        save_pair(root / "data" / "images", root / "data" / "masks", f"p{i}", seed=i)
    from sam_sr.sam.cache import model_tag
    (root / "tiny_sam.pt").write_bytes(b"stand-in: names the tiny SAM's cache")
    cache = SamCache(root / "sam", model_tag("vit_t", root / "tiny_sam.pt"))
    pred = predictor(build_tiny_sam(image_size=1024))
    spec = {"name": "toy", "layout": "generic", "root": str(root / "data"), "k": 3}
    stats = build_region_data([spec], root / "out", cache, pred, PROMPTS, seed=0)
    return root, cache, pred, spec, stats


def test_records_hold_the_grids_and_one_sam_answer_per_prompt(records):
    root, _, _, _, stats = records
    assert stats == {"written": 3, "skipped": 0, "samples": 9}
    with np.load(root / "out" / "toy" / "p0.npz") as z:
        assert z["image256"].shape == (256, 256, 3) and z["gt512"].shape == (512, 512)
        assert z["coarse256"].shape == (3, 256, 256) and z["sam256"].shape == (3, 2, 256, 256)
        assert z["sam256"].dtype == np.float16 and len(z["modes"]) == 3
        # the 96 x 128 photo fills the top 192 of 256 rows of SAM's frame, the rest is padding
        assert z["valid"][:192].all() and not z["valid"][192:].any()


def test_sampling_weights_multiply_dataset_and_mode_factors(records):
    from sam_sr.variants.v4.samples import RegionSamples
    root, cache, _, _, _ = records
    data = RegionSamples(root / "out", ["toy"], cache, {"toy": 2.0}, {"scale_gap": 3.0, "boundary": 0.5})
    modes = [str(data.records[r]["modes"][j]) for r, j in data.index]
    want = [2.0 * {"scale_gap": 3.0, "boundary": 0.5}.get(m, 1.0) for m in modes]
    assert len(modes) == 9 and set(want) != {2.0} and data.sample_weights == want


def test_records_of_photos_outside_the_ids_file_are_not_trained_on(records, tmp_path):
    from sam_sr.training.region import listed_ids
    from sam_sr.variants.v4.samples import RegionSamples
    root, cache, _, spec, _ = records
    ids = tmp_path / "ids.txt"
    ids.write_text("# the training photos\np0\np2\n")
    listed = listed_ids([{**spec, "ids_file": str(ids)}, {"name": "other", "k": 1}])
    assert listed == {"toy": {"p0", "p2"}}
    data = RegionSamples(root / "out", ["toy"], cache, ids=listed)
    assert len(data.records) == 2 and data.passed_over == {"toy": 1}
    assert len(data) == 6 and len(data.sample_weights) == 6
    with pytest.raises(SamSrError, match="no region records"):
        RegionSamples(root / "out", ["toy"], cache, ids={"toy": {"elsewhere"}})


def test_a_rerun_skips_stored_photos(records):
    root, cache, pred, spec, _ = records
    assert build_region_data([spec], root / "out", cache, pred, PROMPTS)["skipped"] == 3


@pytest.mark.parametrize("mode", ["missing_part", "extra_blob", "boundary", "scale_gap"])
def test_synthesised_region_errors_reach_their_iou_range(mode):
    _, mask = disk_photo(192, 256, seed=3)
    gt = mask > 0
    cfg = RegionSynthConfig(degrade_prob=0.0, soft_prob=0.0)
    rng = np.random.default_rng(0)
    ious = [mask_iou(synthesize(gt, mode, rng, cfg)[0] >= 0.5, gt) for _ in range(4)]
    if mode in ("missing_part", "extra_blob"):
        assert all(0.2 <= v < 0.95 for v in ious), ious
    else:
        assert all(v >= 0.5 for v in ious), ious
    assert draw_modes(cfg, 5, rng) and set(draw_modes(cfg, 50, rng)) <= set(cfg.mode_weights)


def test_neighbour_mode_without_sam_falls_back_to_blobs():
    _, mask = disk_photo(seed=1)
    out, used = synthesize(mask > 0, "neighbour", np.random.default_rng(0), RegionSynthConfig())
    assert used == "extra_blob" and out.shape == mask.shape


def test_frame_grid_pads_like_sam():
    g = frame_grid(np.ones((100, 50), np.float32), 512)
    assert g[:, :256].min() == 1 and g[:, 256:].max() == 0


def _v4_model_config():
    from tests.conftest import TINY
    return {**TINY, "region": TINY_REGION, "prompts": [p.to_dict() for p in PROMPTS], "compose": 1.0}


@pytest.fixture(scope="module")
def refiner_checkpoint(records):
    """A tiny CRM checkpoint: the v4 model's boundary refiner."""
    from sam_sr.checkpoint import save_checkpoint
    from sam_sr.variants import build_model
    from tests.conftest import TINY
    torch.manual_seed(0)
    crm = build_model("crm", TINY)
    with torch.no_grad():            # unlike any fresh initialisation, so a refiner not loaded shows
        for w in crm.parameters():
            w.add_(0.25)
    p = records[0] / "crm.pt"
    save_checkpoint(p, crm, "crm", crm.config.to_dict(), iteration=0)
    return p


def _cfg(root, out, refiner, **train):
    from sam_sr.config import load_config
    cfg = load_config()
    cfg.update(variant="v4", task="region", model=_v4_model_config())
    cfg["sam"].update(checkpoint=str(root / "tiny_sam.pt"), cache=str(root / "sam"))
    cfg["region"].update(refiner=str(refiner), records=str(root / "out"),
                         make={"seed": 0, "datasets": [{"name": "toy", "layout": "generic",
                                                        "root": str(root / "data"), "k": 3}]},
                         train_on=["toy"])
    cfg["train"].update({"out_dir": str(out), "iterations": 4, "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0,
                         "warmup": 1, "seed": 0, "log_every": 1, "ckpt_every": 2, **train})
    return cfg


def _weights(path):
    from sam_sr.checkpoint import read_checkpoint
    return read_checkpoint(path)["model"]


def test_region_training_is_deterministic_resumes_exactly_and_keeps_the_refiner(records, refiner_checkpoint, tmp_path):
    from sam_sr.training import train
    root = records[0]
    a = train(_cfg(root, tmp_path / "a", refiner_checkpoint))
    b = train(_cfg(root, tmp_path / "b", refiner_checkpoint))
    assert a["iteration"] == b["iteration"] == 4 and a["records"]["skipped"] == 3   # nothing new to make
    wa, wb = _weights(a["final_checkpoint"]), _weights(b["final_checkpoint"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    stopped = train(_cfg(root, tmp_path / "c", refiner_checkpoint, stop_at=2))
    assert stopped["iteration"] == 2
    resumed = train(_cfg(root, tmp_path / "c", refiner_checkpoint))
    wc = _weights(resumed["final_checkpoint"])
    diff = max(float((wa[k].float() - wc[k].float()).abs().max()) for k in wa)
    assert diff <= 1e-6, diff
    assert float(wa["region.head.weight"].abs().max()) > 0            # the region network learned
    crm = _weights(refiner_checkpoint)
    for w in (wa, wc):                                                  # the refiner is the given CRM,
        assert all(torch.equal(w[k], crm[k]) for k in crm)               # also after a resume


def test_a_region_checkpoint_runs_as_the_v4_variant(records, refiner_checkpoint, tmp_path):
    from sam_sr.training import train
    from sam_sr.variants.v4 import RegionStage
    root, pred = records[0], records[2]
    res = train(_cfg(root, tmp_path / "r", refiner_checkpoint, iterations=2))
    # the stage bound to the trained model and a live tiny SAM (which has no checkpoint file to load)
    from sam_sr.checkpoint import load_model
    from sam_sr.sam.source import LiveSam
    model, _ = load_model(res["final_checkpoint"])
    stage = RegionStage().bind(model)
    image, mask = disk_photo(seed=5)
    out, extra, info = stage(LiveSam(pred.model), image, mask.astype(np.float32) / 255)
    assert out.shape == mask.shape and out.dtype == bool and extra is None
    assert 0 <= info["changed"] <= 1 and 0 <= info["composed_changed"] <= 1
    with pytest.raises(SamSrError, match="needs a v4 model"):
        RegionStage().bind(torch.nn.Linear(1, 1))


def test_missing_records_and_refiner_are_one_clear_error(records, refiner_checkpoint, tmp_path):
    from sam_sr.training import train
    cfg = _cfg(records[0], tmp_path / "x", refiner_checkpoint)
    cfg["region"]["train_on"] = ["nothing"]
    with pytest.raises(SamSrError, match="no region records"):
        train(cfg)
    cfg = _cfg(records[0], tmp_path / "y", refiner_checkpoint)
    cfg["region"]["refiner"] = None
    with pytest.raises(SamSrError, match="needs region.refiner"):
        train(cfg)


def test_the_shipped_region_configs_give_valid_loss_terms(monkeypatch, tmp_path):
    """Every v4 stage config merges onto the base config; its region loss terms must be ones
    region_loss knows (the refiner's train.loss_weights must not leak in)."""
    from sam_sr.config import load_config
    from sam_sr.variants.v4.samples import region_loss
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path))
    logits, gt = torch.zeros(1, 1, 256, 256), torch.ones(1, 1, 512, 512)
    for name in ("region_s1", "region_s2"):
        cfg = load_config(ROOT / "configs" / "v4" / f"{name}.yaml")
        total, terms = region_loss(logits, gt, torch.ones(1, 1, 256, 256), cfg["region"]["loss_weights"])
        assert set(terms) == {"bce", "iou"} and torch.isfinite(total)


@pytest.mark.parametrize("mode", ["fill_holes", "open_holes"])
def test_the_region_step_can_train_on_holes_wrong_in_both_directions(mode):
    import cv2
    gt = np.zeros((192, 256), np.uint8)
    cv2.circle(gt, (128, 96), 70, 1, -1)
    cv2.circle(gt, (128, 96), 30, 0, -1)                      # a wheel: one enclosed hole
    out, used = synthesize(gt > 0, mode, np.random.default_rng(0), RegionSynthConfig(degrade_prob=0.0, soft_prob=0.0))
    assert used == mode and mask_iou(out >= 0.5, gt) < 1.0
    if mode == "fill_holes":
        assert out[96, 128] == 1 and (out >= gt).all()
    else:
        assert not ((out >= 0.5) & (gt == 0)).any()
