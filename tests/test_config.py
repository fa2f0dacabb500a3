"""Configs: every YAML under configs/ loads; extends chains, overrides, unknown keys, the data folder."""
from pathlib import Path

import pytest

from sam_sr import SamSrError
from sam_sr.config import load_config
from sam_sr.training.recipe import load_recipe
from sam_sr.variants import get_variant
from tests.conftest import ROOT

CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "recipes" not in p.parts)
RECIPES = sorted((ROOT / "configs" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_loads_and_builds_its_model_config(path, data_env):
    cfg = load_config(path)
    get_variant(cfg["variant"]).model_config(cfg["model"])      # valid model keys for its variant
    assert "../shared" not in path.read_text()                  # data is named through ${data:...}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads_with_its_stages(path, data_env):
    recipe = load_recipe(path)
    for stage in recipe.stages:
        load_config(stage)


def test_the_shipped_model_recipe_chains_its_nine_stages(data_env):
    """Each stage starts from the previous stage's checkpoint; 7,800 iterations in all (model card);
    every stage ends on an iteration count."""
    recipe = load_recipe("configs/recipes/crm_r18.yaml")
    cfgs = [load_config(p) for p in recipe.stages]
    assert len(cfgs) == 9 and cfgs[0]["train"]["init_checkpoint"] is None
    for prev, cfg in zip(cfgs, cfgs[1:]):
        assert Path(cfg["train"]["init_checkpoint"]).parent == Path(prev["train"]["out_dir"])
    assert sum(c["train"]["stop_at"] or c["train"]["iterations"] for c in cfgs) == 7800
    assert recipe.export["from"] == f"{cfgs[-1]['train']['out_dir']}/final.pt"
    assert cfgs[-1]["inference"] == recipe.export["inference"]


def test_extends_overrides_and_unknown_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path / "data"))
    (tmp_path / "base.yaml").write_text("model: {fusion_channels: 64}\ntrain: {iterations: 10, lr: 1.0e-3}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain: {iterations: 20}\n"
                                         "data: {datasets: [{layout: generic, root: '${data:sod}'}]}\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.lr=5e-4", "data.scale_factors=[8,16]",
                                                "inference.decode=contour:2"])
    assert cfg["model"] == {"fusion_channels": 64}
    assert (cfg["train"]["iterations"], cfg["train"]["lr"]) == (20, 5e-4)
    assert cfg["data"]["scale_factors"] == [8, 16] and cfg["inference"] == {"decode": "contour:2"}
    assert cfg["data"]["datasets"][0]["root"] == str(tmp_path / "data" / "sod")
    with pytest.raises(SamSrError, match="unknown config key 'train.iters'"):
        load_config(tmp_path / "child.yaml", ["train.iters=3"])
    with pytest.raises(SamSrError, match="key=value"):
        load_config(tmp_path / "child.yaml", ["train.iterations"])
    (tmp_path / "bad.yaml").write_text("extends: base.yaml\ndata: {crop: 3}\n")
    with pytest.raises(SamSrError, match="unknown config key 'data.crop'"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(SamSrError, match="extends itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(SamSrError, match="config not found"):
        load_config(tmp_path / "orphan.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SamSrError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_data_paths_need_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SAM_SR_DATA", raising=False)
    (tmp_path / "c.yaml").write_text("data: {datasets: [{layout: generic, root: '${data:sod}'}]}\n")
    with pytest.raises(SamSrError, match="SAM_SR_DATA"):
        load_config(tmp_path / "c.yaml")
    assert load_config(None, ["train.iterations=3"])["train"]["iterations"] == 3   # no data named: fine


def test_bad_recipes(tmp_path):
    with pytest.raises(SamSrError, match="recipe not found"):
        load_recipe(tmp_path / "none")
    (tmp_path / "r.yaml").write_text("stages: [missing.yaml]\n")
    with pytest.raises(SamSrError, match="stage config not found"):
        load_recipe(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text("stages: []\n")
    with pytest.raises(SamSrError, match="no stages"):
        load_recipe(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text("stagez: [a.yaml]\n")
    with pytest.raises(SamSrError, match="unknown recipe keys"):
        load_recipe(tmp_path / "r.yaml")


def test_mixed_precision_no_survives_yaml_and_bad_modes_are_refused():
    """YAML 1.1 reads an unquoted ``no`` as false; ``train.mixed_precision=no`` is still accelerate's "no"
    (it reached accelerate as False and failed there before), and an unknown mode fails naming the key."""
    assert load_config(None, ["train.mixed_precision=no"])["train"]["mixed_precision"] == "no"
    assert load_config(None, ["train.mixed_precision=bf16"])["train"]["mixed_precision"] == "bf16"
    with pytest.raises(SamSrError, match="train.mixed_precision must be one of"):
        load_config(None, ["train.mixed_precision=fp64"])


def test_keep_at_takes_a_list_of_iterations():
    assert load_config(None, ["train.keep_at=[100,200]"])["train"]["keep_at"] == [100, 200]
    for bad in ("train.keep_at=[0]", "train.keep_at=[a]", "train.keep_at=5"):
        with pytest.raises(SamSrError, match="train.keep_at"):
            load_config(None, [bad])
