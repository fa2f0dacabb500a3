"""Training of SAM-SR v4's region step (:class:`sam_sr.models.region.RegionNet`), with accelerate.

A config with ``variant: v4`` and ``task: region`` (``sam-sr train --config configs/v4/...``):

1. The v4 model is built from ``model``; its CRM boundary refiner's weights come from
   ``region.refiner`` (a CRM checkpoint, e.g. the shipped ``sam_sr/weights/crm_r18.pt``) or, for a
   later stage, from ``train.init_checkpoint`` (the previous stage's ``final.pt``). Only the region
   network is trained.
2. The region samples of ``region.make.datasets`` (:mod:`sam_sr.data.region_data`) that are not stored
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
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import SamSrError


class RegionSamples(Dataset):
    """All samples of the region records under ``root/<name>/*.npz`` for the given dataset names,
    held in memory (uint8 / float16), with SAM embeddings from ``sam_cache``.

    Items (keys are taken modulo the length, as :class:`WeightedEpochSampler` yields them): dict of
    float32 tensors ``embedding`` (256, 64, 64), ``coarse`` (1, 256, 256) in [0, 1], ``sam``
    (S, 256, 256) logits, ``image`` (3, 256, 256) in [0, 1], ``valid`` (1, 256, 256),
    ``gt`` (1, 512, 512) in [0, 1].

    Raises:
        SamSrError: no records, or a record whose embedding is not cached.
    """

    def __init__(self, root: str | Path, names: list[str], sam_cache, weights: dict[str, float] | None = None,
                 mode_weights: dict[str, float] | None = None):
        self.records: list[dict[str, np.ndarray]] = []
        self.index: list[tuple[int, int]] = []
        self.embeddings: dict[str, torch.Tensor] = {}
        self.sample_weights: list[float] = []
        for name in names:
            files = sorted((Path(root) / name).glob("*.npz"))
            if not files:
                raise SamSrError(f"no region records in {Path(root) / name}; list the dataset in "
                                 f"region.make.datasets so that they are made")
            for f in files:
                with np.load(f) as z:
                    rec = {k: z[k] for k in z.files}
                key = str(rec["emb_key"])
                if key not in self.embeddings:
                    p = sam_cache.path(key, "embedding")
                    if not p.is_file():
                        raise SamSrError(f"SAM embedding of {f} is not cached in {sam_cache.dir}")
                    with np.load(p) as z:
                        self.embeddings[key] = torch.from_numpy(z["features"][0])
                r = len(self.records)
                self.records.append(rec)
                for j in range(len(rec["modes"])):
                    self.index.append((r, j))
                    mode = str(rec["modes"][j]).split(":")[0]       # "real:dss" -> "real"
                    self.sample_weights.append(float((weights or {}).get(name, 1.0))
                                               * float((mode_weights or {}).get(mode, 1.0)))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        r, j = self.index[int(key) % len(self.index)]
        rec = self.records[r]
        return {
            "embedding": self.embeddings[str(rec["emb_key"])].float(),
            "coarse": torch.from_numpy(rec["coarse256"][j].astype(np.float32) / 255)[None],
            "sam": torch.from_numpy(rec["sam256"][j].astype(np.float32)),
            "image": torch.from_numpy(rec["image256"].astype(np.float32) / 255).permute(2, 0, 1),
            "valid": torch.from_numpy(rec["valid"].astype(np.float32))[None],
            "gt": torch.from_numpy(rec["gt512"].astype(np.float32) / 255)[None],
        }


class WeightedEpochSampler(Sampler[int]):
    """``n`` draws per epoch with replacement, with probabilities proportional to ``weights``; epoch
    e's draws come from a generator seeded with (seed, e), so a resumed run draws the same ones.
    Call :meth:`set_epoch` before iterating an epoch."""

    def __init__(self, weights: list[float], seed: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        if len(self.weights) == 0 or float(self.weights.min()) < 0 or float(self.weights.sum()) <= 0:
            raise SamSrError("region sampling weights must be >= 0 with a positive sum")
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self):
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        return iter(torch.multinomial(self.weights, len(self.weights), replacement=True, generator=g).tolist())


def region_loss(logits: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
                weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE + soft-IoU loss of 256-grid logits against a 512-grid soft ground truth.

    Args:
        logits: float (B, 1, 256, 256). gt: float (B, 1, 512, 512) in [0, 1].
        valid: float (B, 1, 256, 256), 1 where the photo is.
        weights: ``{"bce": w, "iou": w}`` (default 1 and 1).

    Returns:
        (total loss scalar, {term: float}).
    """
    w = {"bce": 1.0, "iou": 1.0, **(weights or {})}
    unknown = sorted(set(w) - {"bce", "iou"})
    if unknown:
        raise SamSrError(f"unknown region loss terms {unknown} (bce, iou)")
    up = F.interpolate(logits.float(), size=gt.shape[-2:], mode="bilinear", align_corners=False)
    v = F.interpolate(valid, size=gt.shape[-2:], mode="nearest")
    bce = (F.binary_cross_entropy_with_logits(up, gt, reduction="none") * v).sum((1, 2, 3)) / v.sum((1, 2, 3))
    p = torch.sigmoid(up) * v
    inter = (p * gt).sum((1, 2, 3))
    union = (p + gt - p * gt).sum((1, 2, 3))
    iou = 1 - (inter + 1) / (union + 1)
    terms = {"bce": bce.mean(), "iou": iou.mean()}
    total = sum(w[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def sam_cache_of(cfg: dict[str, Any]):
    """The :class:`~sam_sr.sam.cache.SamCache` of a config's ``sam`` section (the bundled MobileSAM
    when ``sam.checkpoint`` is null)."""
    from .sam.cache import SamCache, model_tag
    from .sam.loader import BUNDLED_SAM
    s = cfg["sam"]
    ckpt = s.get("checkpoint") or BUNDLED_SAM
    if not Path(ckpt).is_file():
        raise SamSrError(f"SAM checkpoint not found: {ckpt}")
    return SamCache(s["cache"], model_tag(s["type"], ckpt))


def make_region_records(cfg: dict[str, Any], model=None) -> dict[str, int]:
    """Make the region samples of ``region.make.datasets`` that are not stored yet (SAM is loaded
    only if some are missing). Returns :func:`~sam_sr.data.region_data.build_region_data`'s counts."""
    from .data.region_data import RegionSynthConfig, build_region_data
    from .variants import build_model
    model = model or build_model("v4", cfg["model"])
    r, s = cfg["region"], cfg["sam"]
    synth = RegionSynthConfig(**dict(r.get("synth") or {}))

    def predictor():
        from .sam import load_sam
        from .sam import predictor as make_predictor
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

    from .checkpoint import save_checkpoint
    from .training import _init_from, _read_progress, _save_state, _state_dir, build_schedule, end_iteration
    from .variants import build_model

    if cfg["variant"] != "v4":
        raise SamSrError(f"task: region trains SAM-SR v4's region step; variant is {cfg['variant']!r}")
    t, r = cfg["train"], cfg["region"]
    out = Path(t["out_dir"])
    end = end_iteration(t)
    acc = Accelerator(log_with="tensorboard", project_dir=str(out))
    set_seed(int(t["seed"]))
    model = build_model("v4", cfg["model"])
    model_config = model.config.to_dict()
    records = make_region_records(cfg, model) if acc.is_main_process else {}
    acc.wait_for_everyone()
    data = RegionSamples(r["records"], list(r["train_on"]), sam_cache_of(cfg), dict(r.get("weights") or {}),
                         dict(r.get("mode_weights") or {}))
    sampler = WeightedEpochSampler(data.sample_weights, int(t["seed"]))
    loader = DataLoader(data, batch_size=int(t["batch_size"]), sampler=sampler, drop_last=True, num_workers=0)
    if len(loader) == 0:
        raise SamSrError(f"{len(data)} region samples are fewer than batch_size {t['batch_size']}")
    net = model.region
    opt = torch.optim.AdamW(net.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    sched = build_schedule(opt, t)

    state_dir = _state_dir(acc, out)
    progress = _read_progress(state_dir) if t["resume"] else None
    # The boundary refiner is not trained here, so it is not in the training state: load it on a
    # resume too (the region network's weights then come from the state).
    if t["init_checkpoint"]:
        _init_from(model, t["init_checkpoint"])             # the previous stage: region + refiner
    elif r.get("refiner"):
        _init_from(model, r["refiner"])                     # the boundary refiner's weights
    else:
        raise SamSrError("a v4 region stage needs region.refiner (a CRM checkpoint) or train.init_checkpoint")
    if progress is not None and (progress.get("variant") != "v4" or progress.get("model_config") != model_config):
        raise SamSrError(f"cannot resume from {state_dir}: it was trained with another model config")
    net, opt, loader, sched = acc.prepare(net, opt, loader, sched)
    start = 0
    if progress is not None:
        acc.load_state(str(state_dir))
        start = int(progress["iteration"])
        acc.print(f"resumed from {state_dir} at iteration {start}")
    acc.init_trackers("tb", config={k: v for k, v in t.items() if isinstance(v, (int, float, str))})

    def save(it: int, final: Path | None = None) -> None:
        _save_state(acc, state_dir, {"iteration": it, "variant": "v4", "model_config": model_config})
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
    return {"iteration": it, "first_loss": float(np.mean(losses[:log_every])) if losses else float("nan"),
            "last_loss": float(np.mean(losses[-log_every:])) if losses else float("nan"),
            "wall_s": time.time() - t0, "final_checkpoint": str(final), "records": records}
