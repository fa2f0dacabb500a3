"""Training of SAM-SR v5's keep-or-change decision (``task: decision``), with accelerate.

A config with ``variant: v5`` and ``task: decision`` (``configs/v5/decision.yaml``):

1. The v5 model is built from ``model`` and its boundary refiner and region network come from
   ``train.init_checkpoint`` (a v4 or v5 checkpoint: the v4 recipe's last stage); only the decision
   is trained.
2. The decision's records (:mod:`sam_sr.variants.v5.data`) of ``region.decision.datasets`` that are
   not stored under ``region.decision.records`` yet are made: the bundled MobileSAM (its embeddings
   cached in ``sam.cache``) and the region step run on photos the region network never trained on.
3. Labels: a change is positive when taking it alone raises the coarse mask's IoU with the truth,
   weighted by how much it moves it (``|delta IoU|`` in points, plus 0.05); a coarse mask's photo
   label is whether taking all its changes raises the IoU. Each head (one hidden layer) is trained on
   standardised features with full-batch AdamW and weighted BCE, ``train.iterations`` steps, seed
   ``train.seed``: deterministic.
4. The thresholds are chosen by the rule fixed beforehand (:func:`select_thresholds`) on
   out-of-fold probabilities (``region.decision.folds``-fold cross-validation by photo), then the
   heads are trained on all records and ``<out_dir>/final.pt`` is written, with the chosen
   thresholds in its model config and ``<out_dir>/selection.json`` holding the whole grid.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SamSrError

#: The ``region.decision`` section: its keys and defaults.
DECISION_DATA_DEFAULTS: dict[str, Any] = {
    "records": "cache/decision",   # <records>/<dataset>/<id>.npz
    "datasets": [],                # specs of sam_sr.variants.v5.data.build_decision_data
    "folds": 5,
    "seed": 0,
    # the coarse-mask sources whose IoU must not drop ("right" masks) and the others ("wrong" ones)
    "right": ["gt", "scale_gap_x8"],
    "max_right_loss": 0.5,         # points of mean IoU the right masks may lose at most
}
#: The threshold grid of the selection (take, strong, photo).
GRID = {"take": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
        "strong": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01],
        "photo": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6]}


def decision_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """``region.decision`` over :data:`DECISION_DATA_DEFAULTS`.

    Raises:
        SamSrError: an unknown key.
    """
    given = dict((cfg.get("region") or {}).get("decision") or {})
    unknown = sorted(set(given) - set(DECISION_DATA_DEFAULTS))
    if unknown:
        raise SamSrError(f"unknown config key 'region.decision.{unknown[0]}' (keys: {sorted(DECISION_DATA_DEFAULTS)})")
    return {**DECISION_DATA_DEFAULTS, **given}


def _fold(dataset: str, item: str, folds: int) -> int:
    return int(hashlib.sha256(f"{dataset}/{item}".encode()).hexdigest()[:8], 16) % folds


def flatten(records: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The records as arrays: per change ``X`` (N, F), ``y``, ``w``, ``mask`` (the coarse mask it
    belongs to); per coarse mask ``P`` (M, F'), ``py``, ``pw``, ``source``, ``photo`` (photo index),
    ``stats`` (for :func:`~sam_sr.variants.v5.data.subset_iou`)."""
    from ..variants.v5.data import subset_iou
    X, y, w, owner, P, py, pw, source, photo, stats = [], [], [], [], [], [], [], [], [], []
    for pi, rec in enumerate(records):
        for m, name in enumerate(rec["names"]):
            sel = rec["sample"] == m
            st = {"inter": rec["inter"][m], "union": rec["union"][m], "area": rec["area"][sel],
                  "in_gt": rec["in_gt"][sel], "additions": rec["additions"][sel]}
            k = int(sel.sum())
            base = subset_iou(st, np.zeros(k, bool))
            for j in range(k):
                d = subset_iou(st, np.eye(k, dtype=bool)[j]) - base
                X.append(rec["features"][sel][j])
                y.append(float(d > 0))
                w.append(abs(d) * 100 + 0.05)
                owner.append(len(P))
            d_all = subset_iou(st, np.ones(k, bool)) - base
            P.append(rec["photo"][m])
            py.append(float(d_all > 0))
            pw.append(abs(d_all) * 100 + 0.05)
            source.append(str(name).split(":")[0] if str(name).startswith("real:") else str(name))
            photo.append(pi)
            stats.append(st)
    from ..variants.v5.changes import N_CHANGE, N_PHOTO
    return {"X": np.array(X, np.float32).reshape(-1, N_CHANGE + N_PHOTO), "y": np.array(y, np.float32),
            "w": np.array(w, np.float32), "mask": np.array(owner, np.int64),
            "P": np.array(P, np.float32).reshape(-1, N_PHOTO), "py": np.array(py, np.float32),
            "pw": np.array(pw, np.float32), "source": np.array(source), "photo": np.array(photo),
            "stats": stats}


def fit_head(head, X: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int, lr: float, weight_decay: float,
             seed: int, log=None) -> list[float]:
    """Train one decision head in place: its standardisation from ``X``, then full-batch AdamW on
    weighted BCE for ``steps`` steps, seeded. Returns the losses."""
    torch.manual_seed(seed)
    for m in head.net:
        if isinstance(m, torch.nn.Linear):
            m.reset_parameters()
    x = torch.from_numpy(X)
    mean, std = x.mean(0), x.std(0)
    head.mean.copy_(mean)
    head.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
    t, wt = torch.from_numpy(y), torch.from_numpy(w / w.mean())
    opt = torch.optim.AdamW(head.net.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for i in range(steps):
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(head(x), t, reduction="none") * wt).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if log is not None:
            log(i, float(loss))
    return losses


def outcomes(data: dict[str, Any], pc: np.ndarray, pp: np.ndarray, take: float, strong: float, photo: float,
             hole: float, thin: float) -> np.ndarray:
    """IoU gain (points) of each coarse mask with the changes the rule takes, over the mask alone."""
    from ..variants.v5.changes import CHANGE_FEATURES
    from ..variants.v5.data import subset_iou
    X = data["X"]
    is_hole = X[:, CHANGE_FEATURES.index("fills_hole")] >= hole
    is_thin = (X[:, CHANGE_FEATURES.index("is_addition")] < 0.5) & (X[:, CHANGE_FEATURES.index("thickness")] < thin)
    need = np.where(is_hole | is_thin, strong, take)
    taken = pc >= need
    out = np.zeros(len(data["stats"]))
    for m, st in enumerate(data["stats"]):
        sel = data["mask"] == m
        t = taken[sel] & (pp[m] >= photo)
        out[m] = 100 * (subset_iou(st, t) - subset_iou(st, np.zeros(len(t), bool)))
    return out


def select_thresholds(data: dict[str, Any], pc: np.ndarray, pp: np.ndarray, right: list[str],
                      max_right_loss: float, hole: float, thin: float) -> tuple[dict[str, float], list[dict]]:
    """The selection rule, fixed before selection: over :data:`GRID`, among the settings whose mean IoU
    loss on every ``right`` source is at most ``max_right_loss`` points, the largest mean IoU gain
    over the other coarse masks (each source weighted equally); ties to the larger ``take``, then
    ``strong``, then ``photo``. ``pc``/``pp``: out-of-fold probabilities of the changes / masks.

    Returns:
        (the chosen ``{"take", "strong", "photo"}``, every setting's row).
    """
    sources = sorted(set(data["source"]))
    wrong = [s for s in sources if s not in right]
    rows = []
    for take, strong, photo in itertools.product(GRID["take"], GRID["strong"], GRID["photo"]):
        if strong < take:
            continue
        gain = outcomes(data, pc, pp, take, strong, photo, hole, thin)
        per = {s: float(gain[data["source"] == s].mean()) for s in sources}
        rows.append({"take": take, "strong": strong, "photo": photo, "per_source": per,
                     "right_worst": min(per[s] for s in right if s in per) if any(s in per for s in right) else 0.0,
                     "wrong_mean": float(np.mean([per[s] for s in wrong])) if wrong else 0.0})
    ok = [r for r in rows if r["right_worst"] >= -max_right_loss] or rows
    best = max(ok, key=lambda r: (round(r["wrong_mean"], 6), r["take"], r["strong"], r["photo"]))
    return {k: best[k] for k in ("take", "strong", "photo")}, rows


def train_decision(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train v5's decision (see the module docstring).

    Returns:
        ``{"iteration", "start", "first_loss", "last_loss", "wall_s", "final_checkpoint", "records",
        "thresholds"}``.

    Raises:
        SamSrError: not a v5 config, no ``train.init_checkpoint``, no datasets, missing records.
    """
    from accelerate import Accelerator

    from ..checkpoint import save_checkpoint
    from ..sam import load_sam
    from ..sam.cache import SamCache, model_tag
    from ..sam.loader import BUNDLED_SAM
    from ..sam.source import LiveSam
    from ..variants import build_model, get_variant
    from ..variants.v5.data import build_decision_data, load_decision_data
    from .state import init_from

    if cfg["variant"] != "v5":
        raise SamSrError(f"task: decision trains SAM-SR v5's decision; variant is {cfg['variant']!r}")
    t, d = cfg["train"], decision_settings(cfg)
    if not t.get("init_checkpoint"):
        raise SamSrError("a decision stage needs train.init_checkpoint (the v4 region stage's final.pt)")
    if not d["datasets"]:
        raise SamSrError("a decision stage needs region.decision.datasets")
    t0 = time.time()
    out = Path(t["out_dir"])
    acc = Accelerator(log_with="tensorboard", project_dir=str(out))
    model = build_model("v5", cfg["model"])
    init_from(model, t["init_checkpoint"])
    model.eval()
    s = cfg["sam"]
    ckpt = s.get("checkpoint") or BUNDLED_SAM
    cache = SamCache(s["cache"], model_tag(s["type"], ckpt))

    class _LazySource:
        """A live SAM source, loaded on the first photo that is not stored yet."""

        def __init__(self):
            self.live = None

        def predictor(self, image):
            if self.live is None:
                self.live = LiveSam(load_sam(s["type"], ckpt, "cpu"), cache=cache)
            return self.live.predictor(image)

    stage = get_variant("v4").stage().bind(model)       # the region step, every change taken
    records_stats = build_decision_data(d["datasets"], d["records"], stage, _LazySource(), int(d["seed"]))
    records = load_decision_data(d["records"], [ds["name"] for ds in d["datasets"]])
    data = flatten(records)
    if len(data["y"]) == 0:
        raise SamSrError("the decision records hold no change to learn from")
    settings = model.settings()
    steps, lr, wd, seed = int(t["iterations"]), float(t["lr"]), float(t["weight_decay"]), int(t["seed"])
    folds = int(d["folds"])
    fold_of_photo = np.array([_fold(r["dataset"], r["id"], folds) for r in records])
    change_fold = fold_of_photo[data["photo"][data["mask"]]]
    mask_fold = fold_of_photo[data["photo"]]
    pc, pp = np.zeros(len(data["y"]), np.float32), np.zeros(len(data["py"]), np.float32)
    from ..variants.v5.model import Decision
    for f in range(folds):
        tmp = Decision(int(settings["hidden"]))
        tr, te = change_fold != f, change_fold == f
        fit_head(tmp.change, data["X"][tr], data["y"][tr], data["w"][tr], steps, lr, wd, seed)
        ptr, pte = mask_fold != f, mask_fold == f
        fit_head(tmp.photo, data["P"][ptr], data["py"][ptr], data["pw"][ptr], steps, lr, wd, seed)
        with torch.no_grad():
            if te.any():
                pc[te] = torch.sigmoid(tmp.change(torch.from_numpy(data["X"][te]))).numpy()
            if pte.any():
                pp[pte] = torch.sigmoid(tmp.photo(torch.from_numpy(data["P"][pte]))).numpy()
    chosen, rows = select_thresholds(data, pc, pp, list(d["right"]), float(d["max_right_loss"]),
                                     float(settings["hole"]), float(settings["thin"]))
    acc.init_trackers("tb", config={"iterations": steps, "lr": lr, "variant": "v5", "task": "decision"})
    losses = fit_head(model.decision.change, data["X"], data["y"], data["w"], steps, lr, wd, seed,
                      log=lambda i, v: acc.log({"loss/change": v}, step=i + 1) if (i + 1) % 20 == 0 else None)
    fit_head(model.decision.photo, data["P"], data["py"], data["pw"], steps, lr, wd, seed,
             log=lambda i, v: acc.log({"loss/photo": v}, step=i + 1) if (i + 1) % 20 == 0 else None)
    model.config.decision = {**settings, **chosen}
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps({"chosen": chosen, "rows": rows,
                                                    "changes": int(len(data["y"])), "masks": int(len(data["py"])),
                                                    "photos": len(records)}, indent=1) + "\n")
    final = out / "final.pt"
    save_checkpoint(final, model, "v5", model.config.to_dict(), iteration=steps, config=cfg)
    acc.end_training()
    return {"iteration": steps, "start": 0, "first_loss": losses[0], "last_loss": losses[-1],
            "wall_s": time.time() - t0, "final_checkpoint": str(final), "records": records_stats,
            "thresholds": chosen}
