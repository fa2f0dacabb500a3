"""SAM-SR v4's stored region samples read for training: the dataset held in memory, the weighted
epoch sampler and the region loss (used by :mod:`sam_sr.training.region`; the samples are made by
:mod:`sam_sr.variants.v4.data`).

Loss: the network's 256 x 256 logits are upsampled (bilinear) to the 512 x 512 grid of the stored
ground truth and scored with BCE against the area-averaged (soft) ground truth plus a soft-IoU
(Jaccard) loss, over the cells the photo covers (``region.loss_weights``: ``bce``, ``iou``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ...errors import SamSrError


class RegionSamples(Dataset):
    """All samples of the region records under ``root/<name>/*.npz`` for the given dataset names,
    held in memory (uint8 / float16), with SAM embeddings from ``sam_cache``.

    Items (keys are taken modulo the length, as :class:`WeightedEpochSampler` yields them): dict of
    float32 tensors ``embedding`` (256, 64, 64), ``coarse`` (1, 256, 256) in [0, 1], ``sam``
    (S, 256, 256) logits, ``image`` (3, 256, 256) in [0, 1], ``valid`` (1, 256, 256),
    ``gt`` (1, 512, 512) in [0, 1].

    ``ids`` limits a dataset to the listed photo ids (its ``ids_file`` in ``region.make.datasets``):
    records of other photos in its folder, such as ones made before the dataset had an ``ids_file``,
    are passed over and counted in ``self.passed_over``, so that evaluation photos never train.

    Raises:
        SamSrError: no records, or a record whose embedding is not cached.
    """

    def __init__(self, root: str | Path, names: list[str], sam_cache, weights: dict[str, float] | None = None,
                 mode_weights: dict[str, float] | None = None, ids: dict[str, set[str]] | None = None):
        self.records: list[dict[str, np.ndarray]] = []
        self.passed_over: dict[str, int] = {}
        self.index: list[tuple[int, int]] = []
        self.embeddings: dict[str, torch.Tensor] = {}
        self.sample_weights: list[float] = []
        for name in names:
            files = sorted((Path(root) / name).glob("*.npz"))
            if ids is not None and name in ids:
                kept = [f for f in files if f.stem in ids[name]]
                self.passed_over[name] = len(files) - len(kept)
                files = kept
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
                    with np.load(p) as z:   # held as float16, as the cache stored it before 2026-12-07
                        self.embeddings[key] = torch.from_numpy(z["features"][0].astype(np.float16))
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

