"""Training of the region step of SAM-SR v4 (:class:`sam_sr.models.region.RegionNet`), with accelerate.

Samples come from the stored region records (:mod:`sam_sr.data.region_data`) and the SAM cache; SAM
itself never runs here. Loss: the network's 256 x 256 logits are upsampled (bilinear) to the 512 x 512
grid of the stored ground truth and scored with BCE against the area-averaged (soft) ground truth plus
a soft-IoU (Jaccard) loss, over the cells the photo covers.

Resumable: every ``ckpt_every`` iterations the whole training state (model, optimizer, scheduler and
every RNG, via accelerate's ``save_state``) is written to ``<out_dir>/state``; a restarted run loads it
and skips the batches already seen in the current epoch (``skip_first_batches``), so it continues
where it stopped with the same data order.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .errors import SamSrError


class RegionSamples(Dataset):
    """All samples of the region records under ``root/<name>/*.npz`` for the given dataset names,
    held in memory (uint8 / float16), with SAM embeddings from ``sam_cache``.

    Items: dict of float32 tensors ``embedding`` (256, 64, 64), ``coarse`` (1, 256, 256) in [0, 1],
    ``sam`` (S, 256, 256) logits, ``image`` (3, 256, 256) in [0, 1], ``valid`` (1, 256, 256),
    ``gt`` (1, 512, 512) in [0, 1].

    Raises:
        SamSrError: no records, or a record whose embedding is not cached.
    """

    def __init__(self, root: str | Path, names: list[str], sam_cache, weights: dict[str, float] | None = None):
        self.records: list[dict[str, np.ndarray]] = []
        self.index: list[tuple[int, int]] = []
        self.embeddings: dict[str, torch.Tensor] = {}
        self.sample_weights: list[float] = []
        for name in names:
            files = sorted((Path(root) / name).glob("*.npz"))
            if not files:
                raise SamSrError(f"no region records in {Path(root) / name}; run the region-data step first")
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
                    self.sample_weights.append(float((weights or {}).get(name, 1.0)))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, j = self.index[i]
        rec = self.records[r]
        return {
            "embedding": self.embeddings[str(rec["emb_key"])].float(),
            "coarse": torch.from_numpy(rec["coarse256"][j].astype(np.float32) / 255)[None],
            "sam": torch.from_numpy(rec["sam256"][j].astype(np.float32)),
            "image": torch.from_numpy(rec["image256"].astype(np.float32) / 255).permute(2, 0, 1),
            "valid": torch.from_numpy(rec["valid"].astype(np.float32))[None],
            "gt": torch.from_numpy(rec["gt512"].astype(np.float32) / 255)[None],
        }


def region_loss(logits: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
                weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE + soft-IoU loss of 256-grid logits against a 512-grid soft ground truth.

    Args:
        logits: float (B, 1, 256, 256). gt: float (B, 1, 512, 512) in [0, 1].
        valid: float (B, 1, 256, 256), 1 where the photo is.
    """
    w = {"bce": 1.0, "iou": 1.0, **(weights or {})}
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


def _schedule(opt, t: dict[str, Any]):
    """Linear warm-up then cosine decay to 0 over ``iterations`` (torch's SequentialLR)."""
    warm = int(t.get("warmup", 0))
    total = int(t["iterations"])
    cos = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total - warm) / max(1, total - warm))))
    if not warm:
        return cos
    lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, total_iters=warm)
    return torch.optim.lr_scheduler.SequentialLR(opt, [lin, cos], milestones=[warm])


def train_region(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train a :class:`RegionNet` from a config with sections ``model`` (RegionConfig fields),
    ``data`` (``root``, ``datasets``: names, ``weights``: {name: sampling weight}, ``sam_cache``,
    ``sam_tag``, ``num_workers``) and ``train`` (``out_dir``, ``iterations``, ``batch_size``, ``lr``,
    ``weight_decay``, ``warmup``, ``seed``, ``log_every``, ``ckpt_every``, ``loss_weights``,
    ``init_checkpoint``: start from a previous stage's ``final.pt``, ``stop_at``:
    stop (resumably) at this iteration, the schedule still spanning ``iterations``).

    Returns:
        ``{"iteration", "first_loss", "last_loss", "wall_s", "final_checkpoint"}``.

    Raises:
        SamSrError: bad config, missing records or embeddings.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from .checkpoint import save_checkpoint
    from .models.region import RegionConfig, RegionNet
    from .sam.cache import SamCache

    t, d = cfg["train"], cfg["data"]
    out = Path(t["out_dir"])
    acc = Accelerator(log_with="tensorboard", project_dir=str(out))
    set_seed(int(t["seed"]))
    model = RegionNet(RegionConfig.from_dict(cfg.get("model") or {}))
    if t.get("init_checkpoint"):   # the previous stage's weights (fine-tuning)
        from .checkpoint import read_checkpoint
        state = read_checkpoint(t["init_checkpoint"])
        if state.get("model_config") != model.config.to_dict():
            raise SamSrError(f"init_checkpoint {t['init_checkpoint']} has another region config")
        model.load_state_dict(state["model"])
    data = RegionSamples(d["root"], list(d["datasets"]), SamCache(d["sam_cache"], d["sam_tag"]),
                         d.get("weights"))
    gen = torch.Generator().manual_seed(int(t["seed"]))
    sampler = torch.utils.data.WeightedRandomSampler(data.sample_weights, num_samples=len(data),
                                                     replacement=True, generator=gen)
    loader = DataLoader(data, batch_size=int(t["batch_size"]), sampler=sampler, drop_last=True,
                        num_workers=int(d.get("num_workers", 0)))
    opt = torch.optim.AdamW(model.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    sched = _schedule(opt, t)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    state_dir = out / "state"
    start = 0
    if (state_dir / "iteration.txt").is_file():
        acc.load_state(str(state_dir))
        start = int((state_dir / "iteration.txt").read_text())
        acc.print(f"resumed from {state_dir} at iteration {start}")
    acc.init_trackers("tb", config={k: v for k, v in t.items() if isinstance(v, (int, float, str))})
    per_epoch = len(loader)
    if per_epoch == 0:
        raise SamSrError(f"{len(data)} region samples are fewer than batch_size {t['batch_size']}")

    def save(it: int) -> None:
        acc.wait_for_everyone()
        acc.save_state(str(state_dir))
        if acc.is_main_process:
            (state_dir / "iteration.txt").write_text(str(it))

    model.train()
    losses: list[float] = []
    t0 = time.time()
    it = start
    bar = tqdm(total=int(t["iterations"]), initial=start, desc="train region", disable=not acc.is_local_main_process)
    stop = min(int(t["iterations"]), int(t.get("stop_at") or t["iterations"]))
    while it < stop:
        epoch, pos = divmod(it, per_epoch)
        gen.manual_seed(int(t["seed"]) * 100_003 + epoch)   # the same order for the same epoch
        batches = acc.skip_first_batches(loader, pos) if pos else loader
        for batch in batches:
            logits = model(batch["embedding"], batch["coarse"], batch["sam"], batch["image"], batch["valid"])
            loss, terms = region_loss(logits, batch["gt"], batch["valid"], t.get("loss_weights"))
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            opt.step()
            sched.step()
            it += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            if it % int(t["log_every"]) == 0:
                window = losses[-int(t["log_every"]):]
                acc.log({"loss/total": sum(window) / len(window), **{f"loss/{k}": v for k, v in terms.items()},
                         "lr": sched.get_last_lr()[0]}, step=it)
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
            if it % int(t["ckpt_every"]) == 0:
                save(it)
            if it >= stop:
                break
        if it >= stop:
            break
    bar.close()
    save(it)
    if it < int(t["iterations"]):   # stopped early on purpose (train.stop_at): resumable, no final.pt
        acc.end_training()
        return {"iteration": it, "first_loss": float(np.mean(losses[:int(t["log_every"])])) if losses else float("nan"),
                "last_loss": float(np.mean(losses[-int(t["log_every"]):])) if losses else float("nan"),
                "wall_s": time.time() - t0, "final_checkpoint": None}
    final = out / "final.pt"
    if acc.is_main_process:
        m = acc.unwrap_model(model)
        save_checkpoint(final, m, "region", m.config.to_dict(), iteration=it, config=cfg)
    acc.end_training()
    n = int(t["log_every"])
    return {"iteration": it, "first_loss": float(np.mean(losses[:n])) if losses else float("nan"),
            "last_loss": float(np.mean(losses[-n:])) if losses else float("nan"),
            "wall_s": time.time() - t0, "final_checkpoint": str(final)}
