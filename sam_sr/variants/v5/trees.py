"""Gradient-boosted decision trees as a torch module: the keep-or-change decision's heads.

The trees are fitted by scikit-learn's ``HistGradientBoostingClassifier`` (binary, no missing
values) in training (:mod:`sam_sr.training.decision`) and stored as buffers, so inference needs
neither scikit-learn nor pickle, and the checkpoint holds them like any weights: per tree, per node,
the feature index, the threshold (a sample goes left when its value is ``<=`` it), the left and
right children and the value of a leaf. The logit is the fitted baseline plus the sum of the leaves
the sample reaches (as ``decision_function`` computes it).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import SamSrError


class TreeEnsemble(nn.Module):
    """``trees`` trees of at most ``nodes`` nodes each over ``features`` inputs: float (N, F) ->
    logits float (N,). Untrained (no trees fitted): every logit is 0."""

    def __init__(self, features: int, trees: int, nodes: int):
        super().__init__()
        self.features, self.trees, self.nodes = int(features), int(trees), int(nodes)
        t, m = max(1, self.trees), max(1, self.nodes)
        self.register_buffer("feature", torch.zeros(t, m, dtype=torch.int64))
        self.register_buffer("threshold", torch.zeros(t, m))
        self.register_buffer("left", torch.zeros(t, m, dtype=torch.int64))
        self.register_buffer("right", torch.zeros(t, m, dtype=torch.int64))
        self.register_buffer("leaf", torch.ones(t, m, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(t, m))
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("depth", torch.zeros((), dtype=torch.int64))

    @classmethod
    def shape_of(cls, clf) -> tuple[int, int]:
        """(trees, largest node count) of a fitted classifier."""
        preds = [p[0] for p in clf._predictors]
        return len(preds), max(len(p.nodes) for p in preds)

    def load_sklearn(self, clf) -> "TreeEnsemble":
        """Copy a fitted binary ``HistGradientBoostingClassifier``'s trees into the buffers.

        Raises:
            SamSrError: another number of features, more trees or nodes than this module holds.
        """
        if clf.n_features_in_ != self.features:
            raise SamSrError(f"the trees read {clf.n_features_in_} features, this head {self.features}")
        preds = [p[0] for p in clf._predictors]
        if len(preds) > self.trees or max(len(p.nodes) for p in preds) > self.nodes:
            raise SamSrError("the fitted trees do not fit this head's shape")
        with torch.no_grad():
            self.leaf.fill_(True)
            self.value.zero_()
            depth = 0
            for t, p in enumerate(preds):
                n = p.nodes
                k = len(n)
                self.feature[t, :k] = torch.from_numpy(n["feature_idx"].astype(np.int64))
                self.threshold[t, :k] = torch.from_numpy(n["num_threshold"].astype(np.float32))
                self.left[t, :k] = torch.from_numpy(n["left"].astype(np.int64))
                self.right[t, :k] = torch.from_numpy(n["right"].astype(np.int64))
                self.leaf[t, :k] = torch.from_numpy(n["is_leaf"].astype(bool))
                self.value[t, :k] = torch.from_numpy(n["value"].astype(np.float32))
                depth = max(depth, int(n["depth"].max()))
            self.baseline.fill_(float(np.ravel(clf._baseline_prediction)[0]))
            self.depth.fill_(depth)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        node = torch.zeros(n, self.feature.shape[0], dtype=torch.int64, device=x.device)   # (N, T)
        trees = torch.arange(self.feature.shape[0], device=x.device)[None].expand(n, -1)
        for _ in range(int(self.depth) + 1):
            leaf = self.leaf[trees, node]
            f = self.feature[trees, node]
            go_left = x.gather(1, f) <= self.threshold[trees, node]
            nxt = torch.where(go_left, self.left[trees, node], self.right[trees, node])
            node = torch.where(leaf, node, nxt)
        return self.baseline + self.value[trees, node].sum(1)
