import os

import pytest
import torch

from sam_sr.checkpoint import load_model, read_checkpoint, save_checkpoint
from sam_sr.cli import train_main
from sam_sr.config import load_config
from sam_sr.errors import SamSrError
from sam_sr.training import train
from tests.conftest import TINY, save_pair


def _config(tmp_path, iterations, **train_kw):
    for i in range(8):
        save_pair(tmp_path / "data" / "images", tmp_path / "data" / "masks", f"{i}", i)
    cfg = load_config(None, [f"train.out_dir={tmp_path / 'run'}", f"train.iterations={iterations}",
                             "train.batch_size=4", "train.lr=0.003", "train.log_every=10",
                             "train.ckpt_every=10", "train.image_every=10", "data.crop_size=64",
                             "data.num_workers=0", "train.schedule=step"])
    cfg["model"] = dict(TINY)
    cfg["data"]["datasets"] = [{"layout": "generic", "root": str(tmp_path / "data")}]
    cfg["train"].update(train_kw)
    return cfg


def test_a_few_iterations_lower_the_loss_and_log(tmp_path):
    result = train(_config(tmp_path, 60))
    assert result["iteration"] == 60
    assert result["last_loss"] < 0.8 * result["first_loss"], result
    run = tmp_path / "run"
    events = [f for f in run.rglob("events.out.tfevents*")]
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0}).Reload()
    assert "loss/total" in acc.Tags()["scalars"]
    assert any("image" in t for t in acc.Tags()["images"])
    model, state = load_model(run / "final.pt", variant="crm")
    assert state["iteration"] == 60 and (run / "last.pt").is_file()


def test_resume_continues_from_last_checkpoint(tmp_path):
    train(_config(tmp_path, 20))
    first = read_checkpoint(tmp_path / "run" / "last.pt")
    result = train(_config(tmp_path, 30))
    assert result["iteration"] == 30
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert first["iteration"] == 20 and last["iteration"] == 30
    assert last["optimizer"]["state"], "optimizer state is saved for resuming"


def test_resume_refuses_another_model_config(tmp_path):
    train(_config(tmp_path, 10))
    cfg = _config(tmp_path, 20)
    cfg["model"]["fusion_channels"] = 32
    with pytest.raises(SamSrError, match="another model config"):
        train(cfg)


def test_interrupted_save_never_corrupts_the_checkpoint(tmp_path, tiny_model, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, tiny_model, "crm", tiny_model.config.to_dict(), iteration=1)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_model, "crm", tiny_model.config.to_dict(), iteration=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_train_cli_reports_bad_configs(tmp_path, capsys):
    assert train_main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {iters: 3}\n")
    assert train_main(["--config", str(bad)]) == 2
    assert "unknown config key 'train.iters'" in capsys.readouterr().err
    assert train_main(["--config", "configs/crm_r18.yaml", "train.iterations"]) == 2


def test_cli_training_with_overrides(tmp_path, capsys):
    cfg = _config(tmp_path, 4)
    import yaml
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert train_main(["--config", str(path), "train.iterations=3", "train.log_every=1"]) == 0
    assert "done: 3 iterations" in capsys.readouterr().out
    assert torch.load(tmp_path / "run" / "final.pt", weights_only=True)["iteration"] == 3


def test_fine_tuning_from_another_checkpoint_adds_the_mask_skip(tmp_path):
    train(_config(tmp_path, 10))
    cfg = _config(tmp_path, 5, init_checkpoint=str(tmp_path / "run" / "final.pt"),
                  out_dir=str(tmp_path / "ft"), stop_at=3)
    cfg["model"].update({"mask_skip": True, "mask_skip_init": 0.0})
    result = train(cfg)
    assert result["iteration"] == 3                      # stop_at ends the run early
    model, state = load_model(tmp_path / "ft" / "final.pt")
    assert model.config.mask_skip and "skip_scale" in state["model"]
    bad = _config(tmp_path, 5, init_checkpoint=str(tmp_path / "run" / "final.pt"),
                  out_dir=str(tmp_path / "bad"))
    bad["model"]["fusion_channels"] = 32
    with pytest.raises(SamSrError, match="does not fit"):
        train(bad)


def test_band_recipe_native_crops_points_near_the_coarse_contour_and_skip_reset(tmp_path):
    """Stage-3 options: native crops, query points in the coarse band, init_skip after fine-tuning init,
    and the recommended inference settings stored with the checkpoint."""
    cfg = _config(tmp_path, 4, query_points=128, boundary_frac=1.0, point_band=4)
    cfg["model"].update({"mask_skip": True, "mask_skip_init": 0.0})
    cfg["data"].update({"crop_mode": "native", "native_scale": [0.8, 1.2]})
    cfg["inference"] = {"decode": "contour:4"}
    train(cfg)
    ft = _config(tmp_path, 1, init_checkpoint=str(tmp_path / "run" / "final.pt"), init_skip=2.5,
                 out_dir=str(tmp_path / "ft"), lr=0.0)
    ft["model"].update({"mask_skip": True, "mask_skip_init": 0.0})
    train(ft)
    state = read_checkpoint(tmp_path / "ft" / "final.pt")
    assert float(state["model"]["skip_scale"]) == pytest.approx(2.5)      # lr 0: the reset value
    assert read_checkpoint(tmp_path / "run" / "final.pt")["config"]["inference"] == {"decode": "contour:4"}
    no_skip = _config(tmp_path, 1, init_skip=1.0, out_dir=str(tmp_path / "ns"))
    with pytest.raises(SamSrError, match="mask skip"):
        train(no_skip)


def test_lr_mult_groups_and_optimizer_choice(tmp_path):
    from sam_sr.variants import build_model
    from sam_sr.training import _optimizer
    model = build_model("crm", {**TINY, "pixel_head": 4})
    t = {"lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw", "lr_mult": {"pixel_head": 10}}
    opt = _optimizer(model, t)
    assert isinstance(opt, torch.optim.AdamW)
    head = {id(p) for p in model.pixel_head.parameters()}
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_lr[1e-3 * 10] == head
    assert len(by_lr[1e-3]) == len(list(model.parameters())) - len(head)
    with pytest.raises(SamSrError, match="match no model parameter"):
        _optimizer(model, {**t, "lr_mult": {"nothing": 2}})
    with pytest.raises(SamSrError, match="positive"):
        _optimizer(model, {**t, "lr_mult": {"pixel_head": 0}})
    with pytest.raises(SamSrError, match="unknown train.optimizer"):
        _optimizer(model, {**t, "optimizer": "sgd"})


def test_new_pixel_head_learns_with_adamw(tmp_path):
    """Fine-tuning with a new, zero-started pixel head: its output layer moves and its hidden layers
    keep their weights (Adam's coupled L2 term alone would shrink them towards zero)."""
    train(_config(tmp_path, 10))
    ft = _config(tmp_path, 20, init_checkpoint=str(tmp_path / "run" / "final.pt"), optimizer="adamw",
                 lr_mult={"pixel_head": 3}, out_dir=str(tmp_path / "ft"))
    ft["model"] = {**TINY, "pixel_head": 4, "pixel_head_layers": 2}
    train(ft)
    state = read_checkpoint(tmp_path / "ft" / "final.pt")["model"]
    assert state["pixel_head.out.weight"].abs().sum() > 0
    assert state["pixel_head.body.0.weight"].abs().mean() > 0.05
