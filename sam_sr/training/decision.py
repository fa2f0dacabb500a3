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
   label is whether taking all its changes raises the IoU. With ``region.decision.balance``, the
   weights of each dataset's changes (and coarse masks) are scaled to the same total
   (:func:`balanced_weights`). Each head is scikit-learn's
   ``HistGradientBoostingClassifier`` (``train.iterations`` trees of at most 15 leaves, learning
   rate ``train.lr``, no early stopping, ``random_state`` = ``train.seed``: deterministic) with those
   sample weights; its trees are stored in the checkpoint as tensors
   (:class:`~sam_sr.variants.v5.trees.TreeEnsemble`): inference needs no scikit-learn.
4. The thresholds are chosen by the rule (:func:`select_thresholds`) on out-of-fold probabilities
   (``region.decision.folds``-fold cross-validation by photo), then the heads are fitted on all
   records and ``<out_dir>/final.pt`` is written, with the chosen thresholds in its model config and
   ``<out_dir>/selection.json`` holding the whole grid.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SamSrError

#: The ``region.decision`` section: its keys and defaults.
DECISION_DATA_DEFAULTS: dict[str, Any] = {
    "records": "cache/decision",   # <records>/<dataset>/<id>.npz
    "datasets": [],                # specs of sam_sr.variants.v5.data.build_decision_data
    "folds": 5,
    "seed": 0,
    # the coarse-mask sources whose IoU must not drop ("right" masks) and the others ("wrong" ones)
    "right": ["gt", "scale_gap_x8"],
    "right_weight": 2.0,           # a point of IoU lost on a right source costs this many gained on others
    # each dataset's records weigh the same in training and in the rule, however many changes it
    # has (without it, a large dataset teaches the decision its own convention: docs/MODEL_CARD.md)
    "balance": False,
}
#: The threshold grid of the selection (take, strong, photo).
GRID = {"take": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
        "strong": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01],
        "photo": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}


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
    ``stats`` (for :func:`~sam_sr.variants.v5.data.subset_iou`), ``dataset`` (per coarse mask)."""
    from ..variants.v5.data import subset_iou
    X, y, w, owner, P, py, pw, source, photo, stats, dataset = [], [], [], [], [], [], [], [], [], [], []
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
            # a dataset's real maps count as one source ("real"), and their thresholded copies as another
            source.append(str(name).split(":")[0] if str(name).startswith(("real:", "realbin:")) else str(name))
            photo.append(pi)
            stats.append(st)
            dataset.append(str(rec.get("dataset", "")))
    from ..variants.v5.changes import N_CHANGE, N_PHOTO
    return {"X": np.array(X, np.float32).reshape(-1, N_CHANGE + N_PHOTO), "y": np.array(y, np.float32),
            "w": np.array(w, np.float32), "mask": np.array(owner, np.int64),
            "P": np.array(P, np.float32).reshape(-1, N_PHOTO), "py": np.array(py, np.float32),
            "pw": np.array(pw, np.float32), "source": np.array(source), "photo": np.array(photo),
            "stats": stats, "dataset": np.array(dataset, dtype=str)}


def balanced_weights(w: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``w`` (N,) float scaled so that every group (``groups``, N labels: the dataset of each row)
    has the same total weight, and the total is unchanged. A group of zero weight stays zero.

    Returns:
        (N,) float32.
    """
    w = np.asarray(w, np.float64)
    out = w.copy()
    names = sorted(set(groups.tolist()))
    total = w.sum()
    for g in names:
        sel = groups == g
        s = w[sel].sum()
        if s > 0:
            out[sel] = w[sel] * (total / len(names) / s)
    return out.astype(np.float32)


def fit_trees(X: np.ndarray, y: np.ndarray, w: np.ndarray, trees: int, lr: float, seed: int):
    """A fitted ``HistGradientBoostingClassifier`` (see the module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    clf = HistGradientBoostingClassifier(max_iter=trees, learning_rate=lr, max_leaf_nodes=15, min_samples_leaf=20,
                                         l2_regularization=1.0, early_stopping=False, random_state=seed)
    return clf.fit(X, y, sample_weight=w)


def outcomes(data: dict[str, Any], pc: np.ndarray, pp: np.ndarray, take: float, strong: float, photo: float,
             settings: dict[str, Any]) -> np.ndarray:
    """IoU gain (points) of each coarse mask with the changes the rule takes, over the mask alone
    (the rule of :func:`sam_sr.variants.v5.decide`, with ``settings``' hole, thin, big and big_add)."""
    from ..variants.v5 import needs_strong
    from ..variants.v5.data import subset_iou
    need = np.where(needs_strong(data["X"], settings), strong, take)
    taken = pc >= need
    out = np.zeros(len(data["stats"]))
    for m, st in enumerate(data["stats"]):
        sel = data["mask"] == m
        t = taken[sel] & (pp[m] >= photo)
        out[m] = 100 * (subset_iou(st, t) - subset_iou(st, np.zeros(len(t), bool)))
    return out


def _score(per: dict[str, float], right: list[str]) -> tuple[float, float]:
    """(mean gain over the wrong sources, mean loss over the right ones) of one group's ``per``; NaN
    where the group has no such source."""
    wrong = [per[s] for s in per if s not in right]
    losses = [min(0.0, per[s]) for s in right if s in per]
    return (float(np.mean(wrong)) if wrong else float("nan"), float(np.mean(losses)) if losses else float("nan"))


def select_thresholds(data: dict[str, Any], pc: np.ndarray, pp: np.ndarray, right: list[str],
                      right_weight: float, settings: dict[str, Any],
                      balance: bool = False) -> tuple[dict[str, float], list[dict]]:
    """The selection rule: over :data:`GRID`, the setting with the largest score = the mean IoU gain
    (points) over the "wrong" sources (every source not in ``right``, each weighted equally) plus
    ``right_weight`` times the mean over the ``right`` sources of their loss (min(0, mean gain)): a
    point lost on a mask that was right costs ``right_weight`` points gained on one that was wrong.
    With ``balance``, both means are taken per dataset first (its own sources), then over the
    datasets that have such sources, each dataset weighted equally.
    Ties to the larger ``take``, then ``strong``, then ``photo``. ``pc``/``pp``: out-of-fold
    probabilities of the changes / masks.

    Returns:
        (the chosen ``{"take", "strong", "photo"}``, every setting's row).
    """
    sources = sorted(set(data["source"]))
    rows = []
    for take, strong, photo in itertools.product(GRID["take"], GRID["strong"], GRID["photo"]):
        if strong < take:
            continue
        gain = outcomes(data, pc, pp, take, strong, photo, settings)
        per = {s: float(gain[data["source"] == s].mean()) for s in sources}
        row = {"take": take, "strong": strong, "photo": photo, "per_source": per}
        groups = [per]                       # without balance: one group, every dataset pooled
        if balance:
            row["per_dataset"] = {}
            for ds in sorted(set(data["dataset"].tolist())):
                sel = data["dataset"] == ds
                row["per_dataset"][ds] = {s: float(gain[sel & (data["source"] == s)].mean())
                                          for s in sorted(set(data["source"][sel].tolist()))}
            groups = list(row["per_dataset"].values())
        parts = [_score(g, right) for g in groups]
        wr = [a for a, _ in parts if a == a]     # groups without wrong (or right) sources are left out
        rl = [b for _, b in parts if b == b]
        wrong_mean = float(np.mean(wr)) if wr else 0.0
        right_loss = float(np.mean(rl)) if rl else 0.0
        rows.append({**row, "wrong_mean": wrong_mean, "right_loss": right_loss,
                     "score": wrong_mean + right_weight * right_loss})
    best = max(rows, key=lambda r: (round(r["score"], 6), r["take"], r["strong"], r["photo"]))
    return {k: best[k] for k in ("take", "strong", "photo")}, rows


def train_decision(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train v5's decision (see the module docstring).

    Returns:
        ``{"iteration", "start", "first_loss", "last_loss", "wall_s", "final_checkpoint", "records",
        "thresholds", "cv_auc"}``.

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
    trees, lr, seed = int(t["iterations"]), float(t["lr"]), int(t["seed"])
    folds = int(d["folds"])
    fold_of_photo = np.array([_fold(r["dataset"], r["id"], folds) for r in records])
    change_fold = fold_of_photo[data["photo"][data["mask"]]]
    mask_fold = fold_of_photo[data["photo"]]
    if d["balance"]:
        data["w"] = balanced_weights(data["w"], data["dataset"][data["mask"]])
        data["pw"] = balanced_weights(data["pw"], data["dataset"])
    pc, pp = np.zeros(len(data["y"]), np.float32), np.zeros(len(data["py"]), np.float32)
    for f in range(folds):
        tr, te = change_fold != f, change_fold == f
        if te.any():
            pc[te] = fit_trees(data["X"][tr], data["y"][tr], data["w"][tr], trees, lr, seed).predict_proba(data["X"][te])[:, 1]
        ptr, pte = mask_fold != f, mask_fold == f
        if pte.any():
            pp[pte] = fit_trees(data["P"][ptr], data["py"][ptr], data["pw"][ptr], trees, lr, seed).predict_proba(data["P"][pte])[:, 1]
    chosen, rows = select_thresholds(data, pc, pp, list(d["right"]), float(d["right_weight"]), settings,
                                     balance=bool(d["balance"]))
    change = fit_trees(data["X"], data["y"], data["w"], trees, lr, seed)
    photo = fit_trees(data["P"], data["py"], data["pw"], trees, lr, seed)
    from ..variants.v5.model import Decision
    from ..variants.v5.trees import TreeEnsemble
    model.decision = Decision(TreeEnsemble.shape_of(change), TreeEnsemble.shape_of(photo))
    model.decision.change.load_sklearn(change)
    model.decision.photo.load_sklearn(photo)
    model.config.decision = {**settings, **chosen, "change_trees": list(TreeEnsemble.shape_of(change)),
                             "photo_trees": list(TreeEnsemble.shape_of(photo))}
    acc.init_trackers("tb", config={"trees": trees, "lr": lr, "variant": "v5", "task": "decision"})
    auc = {}
    from sklearn.metrics import roc_auc_score
    for name, truth, prob, weight in (("change", data["y"], pc, data["w"]), ("photo", data["py"], pp, data["pw"])):
        auc[name] = float(roc_auc_score(truth, prob, sample_weight=weight)) if 0 < truth.mean() < 1 else float("nan")
    acc.log({"cv/auc_change": auc["change"], "cv/auc_photo": auc["photo"], "selection/score":
             max(r["score"] for r in rows)}, step=trees)
    losses = [float("nan"), float("nan")]
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps({"chosen": chosen, "cv_auc": auc, "rows": rows,
                                                    "changes": int(len(data["y"])), "masks": int(len(data["py"])),
                                                    "photos": len(records)}, indent=1) + "\n")
    final = out / "final.pt"
    save_checkpoint(final, model, "v5", model.config.to_dict(), iteration=trees, config=cfg)
    acc.end_training()
    return {"iteration": trees, "start": 0, "first_loss": losses[0], "last_loss": losses[-1],
            "wall_s": time.time() - t0, "final_checkpoint": str(final), "records": records_stats,
            "thresholds": chosen, "cv_auc": auc}
