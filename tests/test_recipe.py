"""Recipes: every stage in order, finished stages skipped, an unfinished one resumed, the export."""
import pytest
import yaml

from sam_sr import Refiner, SamSrError
from sam_sr.checkpoint import read_checkpoint
from sam_sr.cli import train_main
from sam_sr.training.recipe import load_recipe, run_recipe
from tests.conftest import TINY, save_pair


def _recipe(tmp_path):
    for i in range(8):
        save_pair(tmp_path / "data" / "images", tmp_path / "data" / "masks", f"{i}", i)
    base = {"model": TINY, "data": {"datasets": [{"layout": "generic", "root": "${data:.}"}], "crop_size": 64,
                                    "num_workers": 0},
            "train": {"out_dir": str(tmp_path / "runs" / "one"), "iterations": 6, "stop_at": 4, "batch_size": 4,
                      "ckpt_every": 2, "log_every": 2, "image_every": 100, "query_points": 64}}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "two.yaml").write_text(yaml.safe_dump({
        "extends": "one.yaml", "model": {"mask_skip": True},
        "train": {"out_dir": str(tmp_path / "runs" / "two"), "init_checkpoint": str(tmp_path / "runs/one/final.pt"),
                  "iterations": 3, "stop_at": 0}}))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({
        "stages": ["one.yaml", "two.yaml"],
        "export": {"from": str(tmp_path / "runs/two/final.pt"), "to": str(tmp_path / "out.pt"),
                   "inference": {"decode": "contour:3"}}}))
    return load_recipe(tmp_path / "r.yaml")


@pytest.mark.slow
def test_a_recipe_runs_its_stages_in_order_then_skips_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path / "data"))
    recipe = _recipe(tmp_path)
    report = run_recipe(recipe, log=lambda s: None)
    assert [r.get("status") for r in report] == ["trained", "trained", None]
    assert read_checkpoint(tmp_path / "runs/one/final.pt")["iteration"] == 4       # stop_at
    two = read_checkpoint(tmp_path / "runs/two/final.pt")
    assert two["iteration"] == 3 and "skip_scale" in two["model"]
    exported = Refiner.from_checkpoint(tmp_path / "out.pt", device="cpu")
    assert exported.cascade.decode == "contour:3"
    calls = []
    again = run_recipe(recipe, train_fn=lambda cfg: calls.append(cfg) or {}, log=lambda s: None)
    assert not calls and [r.get("status") for r in again] == ["skipped", "skipped", None]
    # an interrupted second stage (its final checkpoint gone, its state kept) is the only one rerun
    (tmp_path / "runs/two/final.pt").unlink()
    redo = run_recipe(recipe, log=lambda s: None)
    assert [r.get("status") for r in redo] == ["skipped", "trained", None]


def test_recipe_overrides_and_errors_come_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path / "data"))
    recipe = _recipe(tmp_path)
    calls = []
    with pytest.raises(SamSrError, match="unknown config key"):
        run_recipe(recipe, ["train.iters=2"], train_fn=lambda cfg: calls.append(cfg) or {})
    assert not calls
    assert train_main(["--recipe", str(tmp_path / "r.yaml"), "train.nope=1"]) == 2
    assert "unknown config key 'train.nope'" in capsys.readouterr().err


def test_a_recipe_export_can_replace_the_boundary_step_and_set_the_decision(tmp_path):
    """``export: {from: V5, boundary_from: CRM, decision: {...}}`` writes V5 with CRM's boundary step
    and the setting (as ``sam-sr export --boundary-from --decision``), after ``inference`` if given."""
    import torch
    weights = __import__("sam_sr").__path__[0] + "/weights/"
    (tmp_path / "one.yaml").write_text(yaml.safe_dump({"model": TINY, "train": {"out_dir": str(tmp_path / "one")}}))
    export = {"from": weights + "sam_sr_v5.pt", "to": str(tmp_path / "out.pt"),
              "boundary_from": weights + "crm_r18_full.pt", "decision": {"opens": 1.01}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"stages": ["one.yaml"], "export": export}))
    report = run_recipe(load_recipe(tmp_path / "r.yaml"), train_fn=lambda cfg: {}, log=lambda s: None)
    assert report[-1] == {"export": str(tmp_path / "out.pt")}
    out, crm = read_checkpoint(tmp_path / "out.pt"), read_checkpoint(weights + "crm_r18_full.pt")
    assert out["model_config"]["decision"]["opens"] == 1.01
    assert all(torch.equal(out["model"][k], v) for k, v in crm["model"].items())
    # with inference settings too: stored first, then the boundary step replaced; no file left beside it
    export = {**export, "to": str(tmp_path / "both.pt"), "inference": {"margin": 0.1, "upsample_to": 640}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"stages": ["one.yaml"], "export": export}))
    (tmp_path / ".both.pt.settings.pt").write_bytes(b"left by a killed run")   # our scratch file: replaced
    run_recipe(load_recipe(tmp_path / "r.yaml"), train_fn=lambda cfg: {}, log=lambda s: None)
    both = read_checkpoint(tmp_path / "both.pt")
    assert both["config"]["inference"]["margin"] == 0.1 and both["config"]["inference"]["upsample_to"] == 640
    assert both["model_config"]["decision"]["opens"] == 1.01
    assert all(torch.equal(both["model"][k], v) for k, v in crm["model"].items())
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pt") == ["both.pt", "out.pt"]
