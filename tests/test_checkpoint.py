"""Checkpoints: a v5 checkpoint's boundary step replaced from a CRM checkpoint (``replace_boundary``,
``sam-sr export --boundary-from``), and the shipped v5-edge file that it made."""
import pytest
import torch

from sam_sr import SamSrError
from sam_sr.checkpoint import read_checkpoint, replace_boundary, save_checkpoint
from sam_sr.variants import build_model
from tests.conftest import TINY

WEIGHTS = __import__("sam_sr").__path__[0] + "/weights/"


def test_the_boundary_step_comes_from_the_crm_and_nothing_else_changes(tmp_path):
    out = tmp_path / "v5_full_boundary.pt"
    replace_boundary(WEIGHTS + "sam_sr_v5.pt", WEIGHTS + "crm_r18_full.pt", out)
    base, crm, new = (read_checkpoint(p) for p in (WEIGHTS + "sam_sr_v5.pt", WEIGHTS + "crm_r18_full.pt", out))
    assert new["variant"] == "v5" and new["boundary_from"]["checkpoint"] == "crm_r18_full.pt"
    boundary = [k for k in base["model"] if not k.startswith(("region.", "decision."))]
    assert set(boundary) == set(crm["model"]) and len(boundary) > 100
    assert any(not torch.equal(base["model"][k], crm["model"][k]) for k in boundary)
    for k, v in new["model"].items():
        assert torch.equal(v, crm["model"][k] if k in boundary else base["model"][k]), k
    assert new["config"] == base["config"] and new["model_config"] == base["model_config"]


def test_bad_inputs_are_one_error_and_write_nothing(tmp_path):
    tiny = tmp_path / "tiny_crm.pt"
    save_checkpoint(tiny, build_model("crm", TINY), "crm", TINY)
    out = tmp_path / "out.pt"
    with pytest.raises(SamSrError, match="does not match"):
        replace_boundary(WEIGHTS + "sam_sr_v5.pt", tiny, out)
    with pytest.raises(SamSrError, match="a crm one is needed"):
        replace_boundary(WEIGHTS + "sam_sr_v5.pt", WEIGHTS + "sam_sr_v5.pt", out)
    with pytest.raises(SamSrError, match="a v4 or v5 one is needed"):
        replace_boundary(WEIGHTS + "crm_r18.pt", WEIGHTS + "crm_r18.pt", out)
    assert not out.exists()
    out.write_bytes(b"the user's file")
    with pytest.raises(SamSrError, match="exists"):
        replace_boundary(WEIGHTS + "sam_sr_v5.pt", WEIGHTS + "crm_r18.pt", out)
    assert out.read_bytes() == b"the user's file"


def test_the_shipped_v5_edge_differs_from_v5_only_in_its_boundary_step_and_opens():
    """The default's file is v5's with stage 7's boundary step (500 iterations) and decision.opens set."""
    v5, edge = read_checkpoint(WEIGHTS + "sam_sr_v5.pt"), read_checkpoint(WEIGHTS + "sam_sr_v5_edge.pt")
    assert edge["variant"] == "v5" and edge["boundary_from"]["iteration"] == 500
    assert edge["decision_set"] == {"opens": 1.01} and "opens" not in v5["model_config"]["decision"]
    assert {k: v for k, v in edge["model_config"]["decision"].items() if k != "opens"} == v5["model_config"]["decision"]
    changed = {k for k in v5["model"] if not torch.equal(v5["model"][k], edge["model"][k])}
    assert changed and not any(k.startswith(("region.", "decision.")) for k in changed)


def test_the_shipped_v5_holes_differs_from_v5_edge_only_in_its_region_step_and_decision():
    """v5-holes (configs/recipes/v5_holes.yaml) keeps v5-edge's boundary step and ``opens`` rule; its
    region network (fine-tuned 400 iterations) and decision (trees and thresholds) are its own."""
    edge, holes = read_checkpoint(WEIGHTS + "sam_sr_v5_edge.pt"), read_checkpoint(WEIGHTS + "sam_sr_v5_holes.pt")
    assert holes["variant"] == "v5" and holes["boundary_from"] == edge["boundary_from"]
    assert holes["decision_set"] == {"opens": 1.01} and holes["config"]["inference"] == edge["config"]["inference"]
    assert edge["model"].keys() == holes["model"].keys()
    changed = {k for k in edge["model"] if not torch.equal(edge["model"][k], holes["model"][k])}
    assert {k.split(".")[0] for k in changed} == {"region", "decision"}
    assert holes["model_config"]["decision"]["take"] != edge["model_config"]["decision"]["take"]


def test_a_boundary_step_with_image_features_brings_them_and_its_setting(tmp_path):
    """A band refiner fed MobileSAM's TinyViT features (issue 22, item 3) replaces v5's boundary step:
    its extra tensors and its ``image_features`` setting come along, and the result loads."""
    from sam_sr.checkpoint import load_model
    from sam_sr.sam.loader import BUNDLED_SAM
    crm = read_checkpoint(WEIGHTS + "crm_r18.pt")
    cfg = {**crm["model_config"], "image_features": "tinyvit", "image_features_checkpoint": str(BUNDLED_SAM)}
    fed = build_model("crm", cfg)
    fed.load_state_dict(crm["model"], strict=False)
    with torch.no_grad():
        fed.feature_proj[0].weight.fill_(0.01)
    save_checkpoint(tmp_path / "fed.pt", fed, "crm", cfg)
    out = tmp_path / "v5_fed.pt"
    replace_boundary(WEIGHTS + "sam_sr_v5.pt", tmp_path / "fed.pt", out, decision={"opens": 1.01})
    new = read_checkpoint(out)
    assert new["model_config"]["image_features"] == "tinyvit"
    assert new["model_config"]["image_features_checkpoint"] is None
    assert new["config"]["model"]["image_features"] == "tinyvit" and new["model_config"]["decision"]["opens"] == 1.01
    model, _ = load_model(out)
    assert model.image_features is not None
    assert torch.equal(model.state_dict()["feature_proj.0.weight"], fed.state_dict()["feature_proj.0.weight"])
    back = tmp_path / "v5_back.pt"       # and a plain boundary step drops them again
    replace_boundary(out, WEIGHTS + "crm_r18.pt", back)
    plain, _ = load_model(back)
    assert plain.image_features is None and not any(k.startswith("feature_proj.") for k in plain.state_dict())


def test_decision_passes_are_stored_as_the_config_reads_them_and_bad_ones_write_nothing(tmp_path):
    """``sam-sr export ... --decision passes=3`` gives 3.0 from the command line: the file holds 3, in
    both the model config and the record of what was set, beside the settings set before."""
    out = tmp_path / "passes.pt"
    replace_boundary(WEIGHTS + "sam_sr_v5_edge.pt", None, out, decision={"passes": 3.0})
    new = read_checkpoint(out)
    assert new["model_config"]["decision"]["passes"] == 3 and isinstance(new["model_config"]["decision"]["passes"], int)
    assert new["decision_set"] == {"opens": 1.01, "passes": 3}
    bad = tmp_path / "bad.pt"
    with pytest.raises(SamSrError, match="passes"):
        replace_boundary(WEIGHTS + "sam_sr_v5_edge.pt", None, bad, decision={"passes": 0.5})
    assert not bad.exists()
