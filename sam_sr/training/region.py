"""Training of SAM-SR v4's region step (:class:`sam_sr.variants.v4.region_net.RegionNet`), with accelerate.

A config with ``variant: v4`` and ``task: region`` (``sam-sr train --config configs/v4/...``):

1. The v4 model is built from ``model``; its CRM boundary refiner's weights come from
   ``region.refiner`` (a CRM checkpoint, e.g. the shipped ``sam_sr/weights/crm_r18.pt``) or, for a
   later stage, from ``train.init_checkpoint`` (the previous stage's ``final.pt``). Only the region
   network is trained.
2. The region samples of ``region.make.datasets`` (:mod:`sam_sr.variants.v4.data`) that are not stored
   under ``region.records`` yet are made first (SAM runs there, once per photo); training reads the
   datasets named in ``region.train_on``, drawn with ``region.weights`` (per-sample weights by
   dataset), and never runs SAM.
3. Loss: the network's 256 x 256 logits are upsampled (bilinear) to the 512 x 512 grid of the stored
   ground truth and scored with BCE against the area-averaged (soft) ground truth plus a soft-IoU
   (Jaccard) loss, over the cells the photo covers (``region.loss_weights``: ``bce``, ``iou``).

Resumable and deterministic as :mod:`sam_sr.training`: the state (region network, optimizer,
scheduler, RNG) is saved with accelerate every ``train.ckpt_every`` iterations and swapped in
atomically; a rerun re-enters the epoch where it stopped (``skip_first_batches``) and each epoch's
draws are seeded from (seed, epoch). The result, ``<out_dir>/final.pt``, is a whole v4 checkpoint
(region network + boundary refiner) that ``Refiner.from_checkpoint`` runs.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import SamSrError


def sam_cache_of(cfg: dict[str, Any]):
    """The :class:`~sam_sr.sam.cache.SamCache` of a config's ``sam`` section (the bundled MobileSAM
    when ``sam.checkpoint`` is null)."""
    from ..sam.cache import SamCache, model_tag
    from ..sam.loader import BUNDLED_SAM
    s = cfg["sam"]
    ckpt = s.get("checkpoint") or BUNDLED_SAM
    if not Path(ckpt).is_file():
        raise SamSrError(f"SAM checkpoint not found: {ckpt}")
    return SamCache(s["cache"], model_tag(s["type"], ckpt))


#: A region-training config's ``region`` section: its keys and defaults (the config itself only
#: reserves the section; :func:`region_settings` checks it).
REGION_DEFAULTS: dict[str, Any] = {
    "refiner": None,               # CRM checkpoint whose weights are the v4 model's boundary refiner
    "records": "cache/region",     # stored region samples, <records>/<dataset>/<id>.npz
    "make": {"seed": 0, "datasets": []},   # the samples to make (sam_sr.variants.v4.data)
    "synth": {},                   # RegionSynthConfig fields (coarse masks with region errors)
    "train_on": [],                # dataset names of make.datasets to train on
    "weights": {},                 # {dataset: sampling weight per sample}
    "mode_weights": {},            # {coarse-mask mode: factor on that weight}, e.g. scale_gap: 3
    "loss_weights": {"bce": 1.0, "iou": 1.0},   # region_loss terms
}


def region_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config's ``region`` section over :data:`REGION_DEFAULTS`.

    Raises:
        SamSrError: an unknown key (``region.<key>``).
    """
    given = dict(cfg.get("region") or {})
    unknown = sorted(set(given) - set(REGION_DEFAULTS))
    if unknown:
        raise SamSrError(f"unknown config key 'region.{unknown[0]}' (region keys: {sorted(REGION_DEFAULTS)})")
    return {**REGION_DEFAULTS, **given}


def listed_ids(datasets: list[dict[str, Any]]) -> dict[str, set[str]]:
    """``{name: ids}`` of the ``region.make.datasets`` specs that have an ``ids_file``.

    Raises:
        SamSrError: an ``ids_file`` that cannot be read.
    """
    from ..data.datasets import read_ids
    return {str(d["name"]): set(read_ids(d["ids_file"])) for d in datasets if d.get("ids_file")}


def make_region_records(cfg: dict[str, Any], model=None) -> dict[str, int]:
    """Make the region samples of ``region.make.datasets`` that are not stored yet (SAM is loaded
    only if some are missing). Returns :func:`~sam_sr.variants.v4.data.build_region_data`'s counts."""
    from ..variants import build_model
    from ..variants.v4.data import RegionSynthConfig, build_region_data
    model = model or build_model("v4", cfg["model"])
    r, s = region_settings(cfg), cfg["sam"]
    synth = RegionSynthConfig(**dict(r.get("synth") or {}))

    def predictor():
        from ..sam import load_sam
        from ..sam import predictor as make_predictor
        return make_predictor(load_sam(s["type"], s.get("checkpoint"), "cpu"))

    return build_region_data(list(r["make"]["datasets"]), r["records"], sam_cache_of(cfg), predictor,
                             model.prompt_configs(), synth=synth, seed=int(r["make"]["seed"]))


def train_region(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train the region step of a v4 model (see the module docstring).

    Returns:
        ``{"iteration", "first_loss", "last_loss", "wall_s", "final_checkpoint", "records"}``.

    Raises:
        SamSrError: bad config, missing refiner weights, records or embeddings, a state of another
            model config.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from ..checkpoint import save_checkpoint
    from ..variants import build_model
    from ..variants.v4.samples import RegionSamples, WeightedEpochSampler, region_loss
    from . import state

    if cfg["variant"] != "v4":
        raise SamSrError(f"task: region trains SAM-SR v4's region step; variant is {cfg['variant']!r}")
    t, r = cfg["train"], region_settings(cfg)
    out = Path(t["out_dir"])
    end = state.end_iteration(t)
    acc = Accelerator(log_with="tensorboard", project_dir=str(out))
    set_seed(int(t["seed"]))
    model = build_model("v4", cfg["model"])
    model_config = model.config.to_dict()
    records = make_region_records(cfg, model) if acc.is_main_process else {}
    acc.wait_for_everyone()
    data = RegionSamples(r["records"], list(r["train_on"]), sam_cache_of(cfg), dict(r.get("weights") or {}),
                         dict(r.get("mode_weights") or {}), ids=listed_ids(r["make"]["datasets"]))
    if any(data.passed_over.values()):
        print(f"region records outside their dataset's ids_file, not trained on: {data.passed_over}")
    sampler = WeightedEpochSampler(data.sample_weights, int(t["seed"]))
    loader = DataLoader(data, batch_size=int(t["batch_size"]), sampler=sampler, drop_last=True, num_workers=0)
    if len(loader) == 0:
        raise SamSrError(f"{len(data)} region samples are fewer than batch_size {t['batch_size']}")
    net = model.region
    opt = torch.optim.AdamW(net.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    sched = state.build_schedule(opt, t)

    state_dir = state.state_dir_of(acc, out)
    progress = state.read_progress(state_dir) if t["resume"] else None
    # The boundary refiner is not trained here, so it is not in the training state: load it on a
    # resume too (the region network's weights then come from the state).
    if t["init_checkpoint"]:
        state.init_from(model, t["init_checkpoint"])             # the previous stage: region + refiner
    elif r.get("refiner"):
        state.init_from(model, r["refiner"])                     # the boundary refiner's weights
    else:
        raise SamSrError("a v4 region stage needs region.refiner (a CRM checkpoint) or train.init_checkpoint")
    state.check_progress(progress, state_dir, "v4", model_config)
    net, opt, loader, sched = acc.prepare(net, opt, loader, sched)
    start = state.load_progress(acc, state_dir, progress)
    acc.init_trackers("tb", config={k: v for k, v in t.items() if isinstance(v, (int, float, str))})

    def save(it: int, final: Path | None = None) -> None:
        state.save_state(acc, state_dir, {"iteration": it, "variant": "v4", "model_config": model_config})
        if acc.is_main_process and final is not None:
            model.region = acc.unwrap_model(net)
            save_checkpoint(final, model, "v4", model_config, iteration=it, config=cfg)
        acc.wait_for_everyone()

    net.train()
    losses: list[float] = []
    t0 = time.time()
    it = start
    per_epoch = len(loader)
    epoch, skip = divmod(start, per_epoch)
    log_every = int(t["log_every"])
    bar = tqdm(total=end, initial=start, desc="train region", disable=not acc.is_local_main_process)
    while it < end:
        sampler.set_epoch(epoch)
        batches = acc.skip_first_batches(loader, skip) if skip else loader
        for batch in batches:
            logits = net(batch["embedding"], batch["coarse"], batch["sam"], batch["image"], batch["valid"])
            loss, terms = region_loss(logits, batch["gt"], batch["valid"], r.get("loss_weights"))
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            opt.step()
            sched.step()
            it += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            if it % log_every == 0:
                window = losses[-log_every:]
                acc.log({"loss/total": sum(window) / len(window), **{f"loss/{k}": v for k, v in terms.items()},
                         "lr": sched.get_last_lr()[0]}, step=it)
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
            if it % int(t["ckpt_every"]) == 0 and it < end:
                save(it)
            if it >= end:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    final = out / "final.pt"
    save(it, final)
    acc.end_training()
    return {"iteration": it, "start": start, "first_loss": float(np.mean(losses[:log_every])) if losses else float("nan"),
            "last_loss": float(np.mean(losses[-log_every:])) if losses else float("nan"),
            "wall_s": time.time() - t0, "final_checkpoint": str(final), "records": records}

