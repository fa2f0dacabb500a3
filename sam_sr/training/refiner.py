"""Training loop with accelerate: devices, mixed precision, multi-GPU, TensorBoard logging, resume.

Run with ``sam-sr train --config configs/<name>.yaml [key=value ...]`` (or ``accelerate launch
train.py ...``; add ``--cpu`` to ``accelerate launch`` to force the CPU). The shipped model's whole
recipe: ``sam-sr train --recipe crm_r18`` (:mod:`sam_sr.training.recipe`).

A run stops on iterations only (``train.iterations``, or ``train.stop_at`` earlier with the schedule
still spanning ``iterations``), never on wall time, so a slower machine trains the same model.

Outputs in ``<out_dir>``:
- ``state/``: accelerate's :meth:`~accelerate.Accelerator.save_state` (model, optimizer, LR
  scheduler, mixed-precision scaler, Python/numpy/torch RNG states) plus ``progress.json`` (iteration,
  variant, model config), every ``train.ckpt_every`` iterations and at the end, replaced atomically.
  A rerun with ``train.resume: true`` (the default) loads it with
  :meth:`~accelerate.Accelerator.load_state` and re-enters the data where it stopped with
  :meth:`~accelerate.Accelerator.skip_first_batches`: an interrupted run ends with the same weights
  as an uninterrupted one.
- ``last.pt`` (at the same times) and ``final.pt`` (at the end): sam-sr checkpoints (weights, model
  config, the config; :mod:`sam_sr.checkpoint`), for ``train.init_checkpoint`` and inference; and
  ``iter_<N>.pt`` at each iteration N of ``train.keep_at`` before the last (the last is ``final.pt``),
  kept (e.g. candidates along one long run on a lent GPU machine, which returns files but not the
  run's folder).

Determinism: the same config and seed give the same weights on the same machine, whatever
``data.num_workers``: the sampler's order per epoch and each item's augmentation are seeded from
(seed, epoch, index) (:class:`~sam_sr.data.datasets.EpochSampler`,
:class:`~sam_sr.data.RefinementDataset`), and query points from (seed, iteration).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import save_checkpoint
from ..data import CoarseMaskSynthesizer, EpochSampler, RefinementDataset, concat_samples
from ..data.transforms import train_transform
from ..errors import SamSrError
from ..variants import build_model, get_variant
from .losses import point_loss, refinement_loss, sample_query_points
from .state import (
    build_optimizer,
    build_schedule,
    check_progress,
    end_iteration,
    freeze_except,
    init_from,
    load_progress,
    read_progress,
    save_state,
    state_dir_of,
    train_mode,
)


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
        from ..sam.cache import SamCache, model_tag
        from ..sam.source import CachedSam
        from ..sam.stage import SamTrainingInputs
        s = cfg["sam"]
        if not s.get("checkpoint"):
            raise SamSrError(f"variant {spec.name} trains on cached SAM outputs: set sam.checkpoint "
                             f"and run sam-sr precompute-sam")
        if not Path(s["checkpoint"]).is_file():
            raise SamSrError(f"SAM checkpoint not found: {s['checkpoint']}")
        cache = SamCache(s["cache"], model_tag(s["type"], s["checkpoint"]))
        sam_inputs = SamTrainingInputs(spec.stage(s),
                                       CachedSam(cache, s["type"], s["checkpoint"], s["points_per_side"]))
    tf = train_transform(d["crop_size"], tuple(d["crop_scale"]),
                         extra_targets=("extra", "coords") if sam_inputs is not None else (),
                         mode=d["crop_mode"], native_scale=tuple(d["native_scale"]))
    return RefinementDataset(concat_samples(d["datasets"]), synth, tf, d["real_coarse_prob"],
                             seed=cfg["train"]["seed"], sam_inputs=sam_inputs)



def _grid(batch: dict[str, torch.Tensor], prob: torch.Tensor, n: int = 4) -> torch.Tensor:
    """Image grid rows: image | coarse | refined | ground truth, float (3, H*n, W*4)."""
    rows = []
    for i in range(min(n, prob.shape[0])):
        g = lambda m: m[i].expand(3, -1, -1)  # noqa: E731
        rows.append(torch.cat([batch["image"][i], g(batch["coarse"]), g(prob), g(batch["gt"])], 2))
    return torch.cat(rows, 1).clamp(0, 1)



def _query_generator(seed: int, it: int, device: torch.device) -> torch.Generator:
    """The query-point generator of iteration ``it``: seeded from (seed, it), so a resumed run draws
    the same points."""
    g = torch.Generator(device=device)
    return g.manual_seed(int(np.random.SeedSequence([seed, it]).generate_state(1)[0]))



def train_refiner(cfg: dict[str, Any], accelerator: Accelerator | None = None) -> dict[str, Any]:
    """Train a refiner (``task: refiner``) from a loaded config (see :mod:`sam_sr.config` and the
    module docstring); called by :func:`sam_sr.training.train`, which checks the config first.

    Returns:
        ``{"iteration", "first_loss", "last_loss", "final_checkpoint", "wall_s"}``; losses are means
        over the first/last ``log_every`` iterations of this process's run.

    Raises:
        SamSrError: empty dataset, a state of another model config or of an older sam-sr.
    """
    t = cfg["train"]
    out = Path(t["out_dir"])
    end = end_iteration(t)
    acc = accelerator or Accelerator(mixed_precision=t["mixed_precision"], log_with="tensorboard",
                                     project_dir=str(out))
    set_seed(t["seed"])
    model = build_model(cfg["variant"], cfg["model"])
    model_config = model.config.to_dict()
    dataset = build_dataset(cfg)
    sampler = EpochSampler(len(dataset), t["seed"])
    workers = cfg["data"]["num_workers"]
    loader = DataLoader(dataset, batch_size=t["batch_size"], sampler=sampler, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(t["seed"]))
    if len(loader) == 0:
        raise SamSrError(f"dataset of {len(dataset)} samples is smaller than batch_size {t['batch_size']}")
    freeze_except(model, t["trainable"])
    opt = build_optimizer(model, t)
    sched = build_schedule(opt, t)

    state_dir = state_dir_of(acc, out)
    progress = read_progress(state_dir) if t["resume"] else None
    if progress is None and t["resume"] and (out / "last.pt").is_file():
        raise SamSrError(f"{out / 'last.pt'} has no resumable state beside it ({state_dir}; an older sam-sr "
                         f"wrote it): use another train.out_dir, or train.resume=false to start again")
    if progress is None:
        if t["init_checkpoint"]:
            init_from(model, t["init_checkpoint"])
        if t["init_skip"] is not None:
            if not model.config.mask_skip:
                raise SamSrError("train.init_skip needs a model with the mask skip (model.mask_skip: true)")
            with torch.no_grad():
                model.skip_scale.fill_(float(t["init_skip"]))
    check_progress(progress, state_dir, cfg["variant"], model_config)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    start = load_progress(acc, state_dir, progress)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    acc.init_trackers("tb", config={"iterations": t["iterations"], "batch_size": t["batch_size"],
                                    "lr": t["lr"], "variant": cfg["variant"],
                                    "backbone": model_config.get("backbone", "sam+cnn")})
    writer = acc.get_tracker("tensorboard", unwrap=True) if acc.is_main_process else None

    def checkpoint(it: int, path: Path | None = None) -> None:
        """The resumable state, and a sam-sr checkpoint at ``path`` (default ``last.pt``)."""
        save_state(acc, state_dir, {"iteration": it, "variant": cfg["variant"], "model_config": model_config})
        if acc.is_main_process:
            for p in (out / "last.pt", path):
                if p is not None:
                    save_checkpoint(p, acc.unwrap_model(model), cfg["variant"], model_config, iteration=it,
                                    config=cfg)
        acc.wait_for_everyone()

    train_mode(acc.unwrap_model(model))
    keep_at = {int(k) for k in t.get("keep_at") or []}
    losses: list[float] = []
    first_loss = None
    t0 = time.time()
    it = start
    per_epoch = len(loader)
    epoch, skip = divmod(start, per_epoch)
    bar = tqdm(total=end, initial=start, disable=not acc.is_local_main_process, desc="train")
    while it < end:
        batches = acc.skip_first_batches(loader, skip) if skip else loader
        batches.set_epoch(epoch)
        sampler.set_epoch(epoch)
        for batch in batches:
            extra = batch.get("extra")
            if t["query_points"]:
                idx = sample_query_points(batch["gt"], batch["coarse"], t["query_points"], t["boundary_frac"],
                                          coarse_band=t["point_band"],
                                          generator=_query_generator(t["seed"], it, batch["gt"].device))
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
            it += 1
            bar.update(1)
            losses.append(float(loss.detach()))
            if len(losses) == t["log_every"] and first_loss is None:
                first_loss = sum(losses) / len(losses)
            if it % t["log_every"] == 0:
                window = losses[-t["log_every"]:]
                acc.log({"loss/total": sum(window) / len(window), **{f"loss/{k}": v for k, v in terms.items()},
                         "lr": sched.get_last_lr()[0]}, step=it)
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
            if writer is not None and it % t["image_every"] == 0:
                if logits.dim() != 4:  # point-sampled step: decode the whole crop for the picture
                    with torch.no_grad():
                        logits = model(batch["image"], batch["coarse"], extra=extra)
                writer.add_image("train/image|coarse|refined|gt",
                                 _grid(batch, torch.sigmoid(logits.float())), it)
            if it in keep_at and it < end:
                checkpoint(it, out / f"iter_{it}.pt")
            elif it % t["ckpt_every"] == 0 and it < end:
                checkpoint(it)
            if it >= end:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    if t["stop_at"] and start < end:
        acc.print(f"stop_at reached at iteration {end}")
    final = out / "final.pt"
    checkpoint(it, final)
    acc.end_training()
    window = losses[-t["log_every"]:] or [float("nan")]
    return {"iteration": it, "start": start, "first_loss": first_loss if first_loss is not None else
            (losses[0] if losses else float("nan")), "last_loss": sum(window) / len(window),
            "final_checkpoint": str(final), "wall_s": time.time() - t0}

