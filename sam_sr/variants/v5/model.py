"""SAM-SR v5's model: SAM-SR v4 (a CRM boundary refiner with a region network) plus a learned
keep-or-change decision (:class:`Decision`: gradient-boosted trees) over the region step's changes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import SamSrError
from ..v4.model import SamSrV4, V4Config
from .changes import N_CHANGE, N_PHOTO
from .trees import TreeEnsemble

#: The most region passes a v5 model may ask for (``decision.passes``): each costs SAM's prompt decoder,
#: the region network and the decision again (not SAM's image encoder).
MAX_PASSES = 8

#: The decision's settings and their defaults (``decision`` of :class:`V5Config`).
DECISION_DEFAULTS: dict[str, Any] = {
    "take": 0.5,             # a change is taken when its probability reaches this
    "strong": 0.8,           # ... and this, when it fills a hole, cuts a thin part or removes a big one
    "photo": 0.5,            # no change is taken when the photo's probability is below this
    "hole": 0.5,             # an addition fills a hole when this share of it lies in one
    "thin": 0.05,            # a removal cuts a thin part when its thickness feature is below this
    "big": 0.3,              # a removal is big when it takes this share of the coarse mask or more
    "big_add": 0.0,          # an addition of this share of the coarse mask or more needs ``strong``
                             # (0: no rule; additions of other objects beside a right mask)
    "opens": 0.0,            # a removal that opens a new enclosed hole (``hole`` of it or more) needs at
                             # least this (above 1: never; 0: no rule of its own)
    "passes": 1,             # the region step and the decision run up to this many times, each pass's
                             # mask the next one's coarse mask, stopping at a pass that takes nothing
    "kept": {},              # cascade settings for a photo whose region changes are all left (e.g. the
                             # band refiner's own: decode contour:2, margin 0.1); {} = the model's
    "change_trees": [1, 1],  # the heads' shapes: trees, nodes per tree (set by training)
    "photo_trees": [1, 1],
}


@dataclass
class V5Config(V4Config):
    """A v4 model's config (:class:`~sam_sr.variants.v4.model.V4Config`) plus ``decision``: the
    keep-or-change decision's settings, :data:`DECISION_DEFAULTS` keys.

    Raises:
        SamSrError: unknown decision keys, probabilities outside [0, 1], ``passes`` not an integer
            from 1 to :data:`MAX_PASSES`, a hidden size below 1.
    """

    decision: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "V5Config":
        d = dict(d)
        decision = dict(d.pop("decision", None) or {})
        unknown = sorted(set(decision) - set(DECISION_DEFAULTS))
        if unknown:
            raise SamSrError(f"unknown v5 decision settings {unknown}; known: {sorted(DECISION_DEFAULTS)}")
        decision = {**DECISION_DEFAULTS, **decision}
        for k in ("take", "photo", "hole", "big", "big_add"):
            if not 0.0 <= float(decision[k]) <= 1.0:
                raise SamSrError(f"v5 decision.{k} must be in [0, 1], got {decision[k]!r}")
        try:
            opens = float(decision["opens"])
        except (TypeError, ValueError):
            opens = float("nan")
        if not opens >= 0.0:
            raise SamSrError(f"v5 decision.opens must be a number >= 0, got {decision['opens']!r}")
        passes = decision["passes"]
        if isinstance(passes, bool) or not isinstance(passes, (int, float)) \
                or not float(passes).is_integer() or not 1 <= passes <= MAX_PASSES:
            raise SamSrError(f"v5 decision.passes must be an integer from 1 to {MAX_PASSES}, got {passes!r}")
        decision["passes"] = int(passes)
        for k in ("change_trees", "photo_trees"):
            if len(decision[k]) != 2 or min(int(v) for v in decision[k]) < 1:
                raise SamSrError(f"v5 decision.{k} must be [trees, nodes], both >= 1, got {decision[k]!r}")
        base = V4Config.from_dict(d)
        return cls(**{**base.__dict__, "decision": decision})

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["decision"] = {**DECISION_DEFAULTS, **dict(self.decision)}
        return d

    def refiner_dict(self) -> dict[str, Any]:
        d = super().refiner_dict()
        d.pop("decision", None)
        return d


class Decision(nn.Module):
    """The keep-or-change decision: gradient-boosted trees (:class:`~sam_sr.variants.v5.trees.TreeEnsemble`)
    over each change's features (and its photo's), and over the photo's features alone
    (:mod:`sam_sr.variants.v5.changes`). Each gives the probability that taking the change (or, for
    the photo, the region step's changes at all) raises the mask's IoU with the truth. Trained by
    :mod:`sam_sr.training.decision`.

    Args:
        change_trees, photo_trees: (trees, nodes per tree) of each head.
    """

    def __init__(self, change_trees=(1, 1), photo_trees=(1, 1)):
        super().__init__()
        self.change = TreeEnsemble(N_CHANGE + N_PHOTO, *change_trees)
        self.photo = TreeEnsemble(N_PHOTO, *photo_trees)

    @torch.no_grad()
    def probabilities(self, change_features: np.ndarray, photo_features: np.ndarray) -> tuple[np.ndarray, float]:
        """(float (K,) per change, float for the photo), each in [0, 1]."""
        dev = self.photo.value.device
        c = torch.from_numpy(np.asarray(change_features, np.float32)).to(dev)
        p = torch.from_numpy(np.asarray(photo_features, np.float32)).to(dev)
        pc = torch.sigmoid(self.change(c)).cpu().numpy() if len(c) else np.zeros(0, np.float32)
        return pc, float(torch.sigmoid(self.photo(p[None]))[0])


class SamSrV5(SamSrV4):
    """SAM-SR v5: v4's CRM boundary refiner and region network, and :class:`Decision`.

    Attributes:
        decision: the :class:`Decision`.
    """

    variant = "v5"

    def __init__(self, config: V5Config | None = None):
        super().__init__(config or V5Config.from_dict({}))
        d = {**DECISION_DEFAULTS, **self.config.decision}
        self.decision = Decision(d["change_trees"], d["photo_trees"])

    def settings(self) -> dict[str, Any]:
        """The decision's settings (:data:`DECISION_DEFAULTS` keys)."""
        return {**DECISION_DEFAULTS, **dict(self.config.decision)}
