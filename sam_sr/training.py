"""Training loop with accelerate: devices, mixed precision, multi-GPU, TensorBoard logging.

Run with ``accelerate launch train.py --config configs/<name>.yaml [key=value ...]`` (add ``--cpu``
to ``accelerate launch`` to force the CPU), or ``python train.py ...`` for one process.
Checkpoints are written atomically to ``<out_dir>/last.pt`` (and ``<out_dir>/final.pt`` at the end);
a run with ``train.resume: true`` continues from ``last.pt``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import read_checkpoint, save_checkpoint
from .data import CoarseMaskSynthesizer, RefinementDataset, concat_samples
from .data.transforms import train_transform
from .errors import SamSrError
from .losses import point_loss, refinement_loss, sample_query_points
from .variants import build_model, get_variant


def build_dataset(cfg: dict[str, Any]) -> RefinementDataset:
    """Training dataset from a config's ``data`` section."""
    d = cfg["data"]
    if not d["datasets"]:
        raise SamSrError("config has no data.datasets")
    synth = CoarseMaskSynthesizer(iou_range=tuple(d["iou_range"]),
                                  low_iou_range=tuple(d["low_iou_range"]),
                                  scale_factors=tuple(d["scale_factors"]),
                                  mode_weights=dict(d["mode_weights"]), soft_prob=d["soft_prob"])
    sam_inputs = None
    spec = get_variant(cfg["variant"])
    if spec.uses_sam:
        from .sam.cache import SamCache, model_tag
        from .sam.inputs import V1Config
        from .sam.source import CachedSam
        from .sam.stage import SamSettings, SamTrainingInputs
        s = cfg["sam"]
        if not s.get("checkpoint"):
            raise SamSrError(f"variant {spec.name} trains on cached SAM outputs: set sam.checkpoint "
                             f"and run scripts/precompute_sam.py")
        if not Path(s["checkpoint"]).is_file():
            raise SamSrError(f"SAM checkpoint not found: {s['checkpoint']}")
        cache = SamCache(s["cache"], model_tag(s["type"], s["checkpoint"]))
        settings = SamSettings(s["points_per_side"], s["n_points"], V1Config(**s["v1"]))
        sam_inputs = SamTrainingInputs(spec.stage(settings),
                                       CachedSam(cache, s["type"], s["checkpoint"], s["points_per_side"]))
    tf = train_transform(d["crop_size"], tuple(d["crop_scale"]),
                         extra_targets=("extra", "coords") if sam_inputs is not None else (),
                         mode=d["crop_mode"], native_scale=tuple(d["native_scale"]))
    return RefinementDataset(concat_samples(d["datasets"]), synth, tf, d["real_coarse_prob"],
                             seed=cfg["train"]["seed"], sam_inputs=sam_inputs)


def _infinite(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


def _lr_lambda(t: dict[str, Any]):
    total = t["iterations"]
    warm = t["warmup"]

    def f(it: int) -> float:
        if warm and it < warm:
            return (it + 1) / warm
        if t["schedule"] == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
        if t["schedule"] == "step":
            return t["gamma"] ** sum(it >= m * total for m in t["milestones"])
        raise SamSrError(f"unknown schedule {t['schedule']!r} (cosine | step)")
    return f


def _param_groups(model, t: dict[str, Any]) -> list[dict[str, Any]]:
    """Adam parameter groups: parameters whose name starts with a ``train.lr_mult`` prefix get
    ``lr * multiplier`` (e.g. a new pixel head next to fine-tuned weights); the rest ``lr``.

    Raises:
        SamSrError: a prefix that matches no parameter, or a multiplier that is not a positive number.
    """
    groups: dict[str, list] = {"": []}
    mult = dict(t.get("lr_mult") or {})
    for prefix, m in mult.items():
        if not isinstance(m, (int, float)) or m <= 0:
            raise SamSrError(f"train.lr_mult[{prefix!r}] must be a positive number, got {m!r}")
        groups[prefix] = []
    for name, p in model.named_parameters():
        hit = next((pre for pre in mult if name.startswith(pre)), "")
        groups[hit].append(p)
    empty = [pre for pre in mult if not groups[pre]]
    if empty:
        raise SamSrError(f"train.lr_mult prefixes {empty} match no model parameter")
    return [{"params": ps, "lr": t["lr"] * (mult[pre] if pre else 1.0)}
            for pre, ps in groups.items() if ps]


def _optimizer(model, t: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam (``train.optimizer: adam``; weight decay as an L2 term in the gradient, CRM's setting) or
    AdamW (``adamw``; decoupled weight decay, Loshchilov & Hutter 2019), over :func:`_param_groups`.

    With Adam's coupled L2 term, weights whose loss gradient is zero (e.g. a new head behind a
    zero-initialised output layer) are driven to zero at about ``lr`` per step; AdamW shrinks them by
    only ``lr * weight_decay`` per step.

    Raises:
        SamSrError: an unknown optimizer name.
    """
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    name = str(t.get("optimizer", "adam")).lower()
    if name not in kinds:
        raise SamSrError(f"unknown train.optimizer {name!r}; choose from {sorted(kinds)}")
    return kinds[name](_param_groups(model, t), lr=t["lr"], weight_decay=t["weight_decay"])


def _init_from(model, path: str) -> None:
    """Initialise from another checkpoint's weights (fine-tuning). Tensors of the same name and shape
    are copied; parameters the checkpoint lacks keep their initialisation (e.g. a new mask skip).

    Raises:
        SamSrError: unreadable checkpoint, or one whose tensors do not fit this model.
    """
    state = read_checkpoint(path)["model"]
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise SamSrError(f"init_checkpoint {path} does not fit this model: e.g. {bad[:3]}")
    missing = model.load_state_dict(state, strict=False).missing_keys
    print(f"initialised from {path}" + (f"; new parameters: {missing}" if missing else ""))


def _grid(batch: dict[str, torch.Tensor], prob: torch.Tensor, n: int = 4) -> torch.Tensor:
    """Image grid rows: image | coarse | refined | ground truth, float (3, H*n, W*4)."""
    rows = []
    for i in range(min(n, prob.shape[0])):
        g = lambda m: m[i].expand(3, -1, -1)  # noqa: E731
        rows.append(torch.cat([batch["image"][i], g(batch["coarse"]), g(prob), g(batch["gt"])], 2))
    return torch.cat(rows, 1).clamp(0, 1)


def train(cfg: dict[str, Any], accelerator: Accelerator | None = None) -> dict[str, Any]:
    """Train a refiner from a loaded config (see :mod:`sam_sr.config`).

    Returns:
        ``{"iteration", "first_loss", "last_loss", "final_checkpoint", "wall_s"}``; losses are means
        over the first/last ``log_every`` iterations of this process's run.

    Raises:
        SamSrError: bad config, empty dataset, unusable resume checkpoint.
    """
    t = cfg["train"]
    out = Path(t["out_dir"])
    acc = accelerator or Accelerator(mixed_precision=t["mixed_precision"], log_with="tensorboard",
                                     project_dir=str(out))
    set_seed(t["seed"])
    model = build_model(cfg["variant"], cfg["model"])
    model_config = model.config.to_dict()
    dataset = build_dataset(cfg)
    loader = DataLoader(dataset, batch_size=t["batch_size"], shuffle=True, drop_last=True,
                        num_workers=cfg["data"]["num_workers"],
                        persistent_workers=cfg["data"]["num_workers"] > 0)
    if len(loader) == 0:
        raise SamSrError(f"dataset of {len(dataset)} samples is smaller than batch_size {t['batch_size']}")
    opt = _optimizer(model, t)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(t))

    if t["init_checkpoint"]:
        _init_from(model, t["init_checkpoint"])
    if t["init_skip"] is not None:
        if not model.config.mask_skip:
            raise SamSrError("train.init_skip needs a model with the mask skip (model.mask_skip: true)")
        with torch.no_grad():
            model.skip_scale.fill_(float(t["init_skip"]))
    start = 0
    last = out / "last.pt"
    if t["resume"] and last.is_file():
        state = read_checkpoint(last)
        if state.get("variant") != cfg["variant"] or state.get("model_config") != model_config:
            raise SamSrError(f"cannot resume from {last}: it was trained with another model config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["iteration"])
        acc.print(f"resumed from {last} at iteration {start}")

    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    acc.init_trackers("tb", config={"iterations": t["iterations"], "batch_size": t["batch_size"],
                                    "lr": t["lr"], "variant": cfg["variant"],
                                    "backbone": model_config.get("backbone", "sam+cnn")})
    writer = acc.get_tracker("tensorboard", unwrap=True) if acc.is_main_process else None

    def checkpoint(it: int, path: Path) -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_checkpoint(path, acc.unwrap_model(model), cfg["variant"], model_config,
                            optimizer=opt.state_dict(), scheduler=sched.state_dict(), iteration=it,
                            config=cfg)

    data = _infinite(loader)
    model.train()
    losses: list[float] = []
    first_loss = None
    t0 = time.time()
    it = start
    bar = tqdm(range(start, t["iterations"]), initial=start, total=t["iterations"],
               disable=not acc.is_local_main_process, desc="train")
    for it in bar:
        batch = next(data)
        extra = batch.get("extra")
        if t["query_points"]:
            idx = sample_query_points(batch["gt"], batch["coarse"], t["query_points"], t["boundary_frac"],
                                      coarse_band=t["point_band"])
            with acc.autocast():
                logits = model(batch["image"], batch["coarse"], extra=extra, idx=idx)
            loss, terms = point_loss(logits, torch.gather(batch["gt"].flatten(1), 1, idx),
                                     t["loss_weights"])
        else:
            with acc.autocast():
                logits = model(batch["image"], batch["coarse"], extra=extra)
            loss, terms = refinement_loss(logits, batch["gt"], t["loss_weights"])
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if len(losses) == t["log_every"] and first_loss is None:
            first_loss = sum(losses) / len(losses)
        if (it + 1) % t["log_every"] == 0:
            window = losses[-t["log_every"]:]
            acc.log({"loss/total": sum(window) / len(window), **{f"loss/{k}": v for k, v in terms.items()},
                     "lr": sched.get_last_lr()[0]}, step=it + 1)
            bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
        if writer is not None and (it + 1) % t["image_every"] == 0:
            if logits.dim() != 4:  # point-sampled step: decode the whole crop for the picture
                with torch.no_grad():
                    logits = model(batch["image"], batch["coarse"], extra=extra)
            writer.add_image("train/image|coarse|refined|gt", _grid(batch, torch.sigmoid(logits.float())),
                             it + 1)
        if (it + 1) % t["ckpt_every"] == 0:
            checkpoint(it + 1, last)
        if t["max_minutes"] and time.time() - t0 > 60 * t["max_minutes"]:
            acc.print(f"max_minutes reached at iteration {it + 1}")
            break
        if t["stop_at"] and it + 1 >= t["stop_at"]:
            acc.print(f"stop_at reached at iteration {it + 1}")
            break
    else:
        it = t["iterations"] - 1
    final_it = it + 1 if start < t["iterations"] else start
    checkpoint(final_it, last)
    final = out / "final.pt"
    checkpoint(final_it, final)
    acc.end_training()
    window = losses[-t["log_every"]:] or [float("nan")]
    return {"iteration": final_it, "first_loss": first_loss if first_loss is not None else
            (losses[0] if losses else float("nan")), "last_loss": sum(window) / len(window),
            "final_checkpoint": str(final), "wall_s": time.time() - t0}
