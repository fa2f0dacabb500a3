"""SAM-SR v5's model: SAM-SR v4 (a CRM boundary refiner with a region network) plus a learned
keep-or-change decision (:class:`Decision`) over the region step's changes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import SamSrError
from ..v4.model import SamSrV4, V4Config
from .changes import N_CHANGE, N_PHOTO

#: The decision's settings and their defaults (``decision`` of :class:`V5Config`).
DECISION_DEFAULTS: dict[str, Any] = {
    "hidden": 16,            # units of each head's hidden layer
    "take": 0.5,             # a change is taken when its probability reaches this
    "strong": 0.8,           # ... and this, when it fills an enclosed hole or removes a thin part
    "photo": 0.5,            # no change is taken when the photo's probability is below this
    "hole": 0.5,             # an addition fills a hole when this share of it lies in one
    "thin": 0.05,            # a removal cuts a thin part when its thickness feature is below this
}


@dataclass
class V5Config(V4Config):
    """A v4 model's config (:class:`~sam_sr.variants.v4.model.V4Config`) plus ``decision``: the
    keep-or-change decision's settings, :data:`DECISION_DEFAULTS` keys.

    Raises:
        SamSrError: unknown decision keys, probabilities outside [0, 1], a hidden size below 1.
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
        for k in ("take", "strong", "photo", "hole"):
            if not 0.0 <= float(decision[k]) <= 1.0:
                raise SamSrError(f"v5 decision.{k} must be in [0, 1], got {decision[k]!r}")
        if int(decision["hidden"]) < 1:
            raise SamSrError(f"v5 decision.hidden must be >= 1, got {decision['hidden']!r}")
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


class _Head(nn.Module):
    """Standardised features -> one hidden layer -> a logit."""

    def __init__(self, n: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.net = nn.Sequential(nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)[..., 0]


class Decision(nn.Module):
    """The keep-or-change decision: a head over each change's features (and its photo's), and a head
    over the photo's features alone (:mod:`sam_sr.variants.v5.changes`). Each gives the probability
    that taking the change (or, for the photo, the region step's changes at all) raises the mask's IoU
    with the truth. Trained by :mod:`sam_sr.training.decision`."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.change = _Head(N_CHANGE + N_PHOTO, hidden)
        self.photo = _Head(N_PHOTO, hidden)

    @torch.no_grad()
    def probabilities(self, change_features: np.ndarray, photo_features: np.ndarray) -> tuple[np.ndarray, float]:
        """(float (K,) per change, float for the photo), each in [0, 1]."""
        dev = self.photo.mean.device
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
        self.decision = Decision(int({**DECISION_DEFAULTS, **self.config.decision}["hidden"]))

    def settings(self) -> dict[str, Any]:
        """The decision's settings (:data:`DECISION_DEFAULTS` keys)."""
        return {**DECISION_DEFAULTS, **dict(self.config.decision)}
