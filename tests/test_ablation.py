"""The SAM-SR ablation runner: rows, gains, v1's CRM fallback, example picking."""
import pytest
import torch

from sam_sr import Refiner, SamSrError
from sam_sr.data import load_samples
from sam_sr.evaluation.ablation import checkpoint_for, format_ablation, pick_examples, run_ablation
from sam_sr.sam import build_tiny_sam
from sam_sr.sam.cache import SamCache
from sam_sr.sam.source import LiveSam
from sam_sr.sam.stage import SamInputs
from sam_sr.variants import build_model, get_variant
from tests.conftest import TINY, save_pair


def test_checkpoint_for_uses_crm_for_v1(tmp_path):
    (tmp_path / "crm").mkdir()
    torch.save({}, tmp_path / "crm" / "final.pt")
    assert checkpoint_for(tmp_path, "v1") == tmp_path / "crm" / "final.pt"
    with pytest.raises(SamSrError, match="configs/experiments/sam_sr/v2.1.yaml"):
        checkpoint_for(tmp_path, "v2.1")


def test_run_ablation_scores_every_row(tmp_path):
    for i in range(3):
        save_pair(tmp_path / "images", tmp_path / "masks", f"{i}", i)
    samples = load_samples({"layout": "generic", "root": str(tmp_path)})
    torch.manual_seed(0)
    crm = build_model("crm", TINY).eval()
    cache = SamCache(tmp_path / "cache", "tiny")
    v1 = Refiner(crm, "cpu", sam_inputs=SamInputs(get_variant("v1").stage(),
                                                  LiveSam(build_tiny_sam(), cache, points_per_side=4)))
    out = run_ablation({"crm": Refiner(crm, "cpu"), "v1": v1}, samples, ["scale_gap_x4"])
    res = out["results"]["scale_gap_x4"]
    assert list(res) == ["coarse", "crm", "v1"] and all(r["n"] == 3 for r in res.values())
    assert len(out["per_image"]["scale_gap_x4"]["crm"]) == 3 and out["ids"] == ["0", "1", "2"]
    assert 0.0 <= out["v1_used_sam"] <= 1.0
    table = format_ablation(out["results"])
    assert table.count("\n") == 5 and "| coarse |" in table and "+0.00 / +0.00" in table


def test_pick_examples():
    per = {"crm": [50.0, 60.0, 70.0, 80.0], "v2.1": [55.0, 60.0, 60.0, 90.0]}
    assert pick_examples(per, "crm", "v2.1") == [(3, 10.0), (0, 5.0), (2, -10.0)]
    assert pick_examples({"crm": [1.0], "v2.1": [1.0]}, "crm", "v2.1") == []
