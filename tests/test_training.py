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


@pytest.mark.slow
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


def _weights(path):
    return read_checkpoint(path)["model"]


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.slow
def test_same_seed_gives_the_same_weights_with_any_number_of_data_workers(tmp_path):
    """Augmentation, coarse-mask synthesis, sampling order and query points are all seeded: two runs
    of one config end with the same weights, whether items are loaded in the main process or in two
    workers; another seed gives other weights."""
    runs = {}
    for name, workers, seed in (("a", 0, 0), ("b", 2, 0), ("c", 0, 1)):
        cfg = _config(tmp_path, 6, out_dir=str(tmp_path / name), query_points=64, seed=seed)
        cfg["data"]["num_workers"] = workers
        train(cfg)
        runs[name] = _weights(tmp_path / name / "final.pt")
    assert _max_diff(runs["a"], runs["b"]) == 0.0
    assert _max_diff(runs["a"], runs["c"]) > 1e-3


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    """Stopped at iteration 5 (mid-epoch: 12 samples, batch 4) and resumed, a run ends as one that ran
    through: model, optimizer, schedule, RNG and the data position all come back. Tolerance: equal
    to 1e-6 (CPU, fp32; in practice bit-identical)."""
    def cfg(out, **kw):
        c = _config(tmp_path, 9, out_dir=str(tmp_path / out), query_points=64, ckpt_every=100, warmup=2, **kw)
        c["data"]["datasets"][0]["root"] = str(tmp_path / "data12")
        return c
    for i in range(12):
        save_pair(tmp_path / "data12" / "images", tmp_path / "data12" / "masks", f"{i}", i)
    whole = train(cfg("whole"))
    assert whole["iteration"] == 9
    first = train(cfg("split", stop_at=5))
    assert first["iteration"] == 5 and (tmp_path / "split" / "state" / "progress.json").is_file()
    second = train(cfg("split"))
    assert second["iteration"] == 9
    diff = _max_diff(_weights(tmp_path / "whole" / "final.pt"), _weights(tmp_path / "split" / "final.pt"))
    assert diff <= 1e-6, diff
    again = train(cfg("split"))                            # a finished run resumes at its end
    assert again["iteration"] == 9
    assert _max_diff(_weights(tmp_path / "split" / "final.pt"), _weights(tmp_path / "whole" / "final.pt")) <= 1e-6


def test_a_run_without_resumable_state_is_refused(tmp_path, tiny_model):
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "last.pt", tiny_model, "crm", tiny_model.config.to_dict(), iteration=3)
    with pytest.raises(SamSrError, match="no resumable state"):
        train(_config(tmp_path, 5))
    assert train(_config(tmp_path, 2, resume=False))["iteration"] == 2


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_learning_rate_schedule(schedule):
    """Warm-up from lr / W, then cosine to 0 over the remaining iterations, or x gamma at the milestones."""
    import math

    from sam_sr.training.state import build_schedule
    t = {"iterations": 100, "warmup": 10, "schedule": schedule, "milestones": [0.5, 0.8], "gamma": 0.1}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_schedule(opt, t)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    if schedule == "cosine":
        assert lrs[10:] == pytest.approx([0.5 * (1 + math.cos(math.pi * (i - 10) / 90)) for i in range(10, 100)],
                                         abs=1e-6)
    else:
        assert lrs[10:] == pytest.approx([0.1 ** ((i >= 50) + (i >= 80)) for i in range(10, 100)])
    with pytest.raises(SamSrError, match="unknown train.schedule"):
        build_schedule(opt, {**t, "schedule": "linear"})


def test_stop_at_must_lie_within_the_schedule(tmp_path):
    with pytest.raises(SamSrError, match="stop_at"):
        train(_config(tmp_path, 5, stop_at=6))


@pytest.mark.slow
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
    bad.write_text("train: {max_minutes: 30}\n")         # wall-time stopping is gone
    assert train_main(["--config", str(bad)]) == 2
    assert "unknown config key 'train.max_minutes'" in capsys.readouterr().err
    assert train_main(["--config", "configs/crm_r18/crm_r18.yaml", "train.iterations"]) == 2


@pytest.mark.slow
def test_cli_training_with_overrides(tmp_path, capsys):
    cfg = _config(tmp_path, 4)
    import yaml
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert train_main(["--config", str(path), "train.iterations=3", "train.log_every=1"]) == 0
    assert "done: 3 iterations" in capsys.readouterr().out
    assert torch.load(tmp_path / "run" / "final.pt", weights_only=True)["iteration"] == 3


@pytest.mark.slow
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


@pytest.mark.slow
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
    from sam_sr.training.state import build_optimizer
    from sam_sr.variants import build_model
    model = build_model("crm", {**TINY, "pixel_head": 4})
    t = {"lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw", "lr_mult": {"pixel_head": 10}}
    opt = build_optimizer(model, t)
    assert isinstance(opt, torch.optim.AdamW)
    head = {id(p) for p in model.pixel_head.parameters()}
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_lr[1e-3 * 10] == head
    assert len(by_lr[1e-3]) == len(list(model.parameters())) - len(head)
    with pytest.raises(SamSrError, match="match no model parameter"):
        build_optimizer(model, {**t, "lr_mult": {"nothing": 2}})
    with pytest.raises(SamSrError, match="positive"):
        build_optimizer(model, {**t, "lr_mult": {"pixel_head": 0}})
    with pytest.raises(SamSrError, match="unknown train.optimizer"):
        build_optimizer(model, {**t, "optimizer": "sgd"})


@pytest.mark.slow
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


@pytest.mark.slow
def test_trainable_prefixes_train_alone_and_the_rest_keeps_its_weights_and_statistics(tmp_path):
    """``train.trainable``: only the named parameters move; every other weight and batch-norm
    statistic stays as loaded (the frozen modules run in eval mode)."""
    train(_config(tmp_path, 10))
    start = _weights(tmp_path / "run" / "final.pt")
    ft = _config(tmp_path, 6, init_checkpoint=str(tmp_path / "run" / "final.pt"), trainable=["decoder"],
                 out_dir=str(tmp_path / "ft"))
    train(ft)
    end = _weights(tmp_path / "ft" / "final.pt")
    moved = {k for k in start if not torch.equal(start[k], end[k])}
    assert moved and all(k.startswith("decoder") for k in moved), sorted(moved)[:5]
    assert any(k.startswith("encoder") and "running_mean" in k for k in start)   # statistics held too
    with pytest.raises(SamSrError, match="trainable prefixes"):
        train(_config(tmp_path, 2, trainable=["nothing"], out_dir=str(tmp_path / "bad")))


def test_train_mode_leaves_frozen_modules_in_eval():
    from sam_sr.training.state import freeze_except, train_mode
    from sam_sr.variants import build_model
    model = build_model("crm", dict(TINY))
    freeze_except(model, ["fusion"])
    assert all(p.requires_grad == n.startswith("fusion") for n, p in model.named_parameters())
    train_mode(model)
    assert model.fusion.training and not model.encoder.training and not model.decoder.training
    assert not any(m.training for m in model.encoder.modules())


@pytest.mark.slow
def test_ctrl_c_while_saving_keeps_the_previous_state_and_leaves_no_partial_one(tmp_path, monkeypatch):
    from accelerate import Accelerator
    real, calls = Accelerator.save_state, []

    def save_state(self, output_dir=None, **kw):
        calls.append(output_dir)
        if len(calls) == 2:                     # the second save (the end of the run) is interrupted
            real(self, output_dir, **kw)        # ... after writing part of it
            raise KeyboardInterrupt
        return real(self, output_dir, **kw)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, 4, ckpt_every=2))
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("state")) == ["state"]
    assert '"iteration": 2' in (run / "state" / "progress.json").read_text()
    monkeypatch.setattr(Accelerator, "save_state", real)
    assert train(_config(tmp_path, 4, ckpt_every=2))["iteration"] == 4
