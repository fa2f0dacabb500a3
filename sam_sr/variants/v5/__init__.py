"""SAM-SR v5: v4's region step, whose changes a learned keep-or-change decision takes or leaves, then
the CRM cascade re-draws the boundary. sam-sr's default is ``v5-edge`` (:data:`SPEC_EDGE`): v5 whose
boundary step was trained where the truth sits on the edge, and which never opens a new hole in the
coarse mask on the region step's word alone. ``v5-holes`` (:data:`SPEC_HOLES`) is v5-edge whose region
network was fine-tuned on coarse masks with wrong holes, and whose decision was trained again over it.

The region step (:mod:`sam_sr.variants.v4`) proposes changes to the coarse mask: connected parts where
its mask and the coarse mask disagree by more than a sliver along the contour
(:mod:`sam_sr.variants.v5.changes`). :class:`~sam_sr.variants.v5.model.Decision` gives each change,
and the photo, the probability that taking it raises the mask's IoU with the truth, from what
inference sees (the region network's confidence, SAM's two answers, their predicted IoU and
stability and agreement, the coarse mask's softness, detail and holes, the change's size and place).
A change is taken when its probability reaches ``take``; one that fills an enclosed hole of the
coarse mask, removes a thin part of it, or removes a big part of it (``big`` of its area or more)
only when it reaches ``strong`` (above 1: never), and so does an addition of ``big_add`` of its area or
more where ``big_add`` is set (above 0); a removal that would open a new enclosed hole in the
coarse mask (``hole`` of it or more; a blurred face cut out of a portrait) only when it also reaches
``opens`` (0: no rule of its own; above 1: never); and none is taken when the photo's probability is
below ``photo``. The rest of the coarse mask, boundary included, goes to
the boundary step unchanged. With ``passes`` above 1, a pass that took changes is followed by
another over its result (SAM's prompts drawn again from the corrected mask, the same image
embedding), up to ``passes`` in all; the first pass that takes nothing ends it. Each pass's
rules hold against the mask it starts from, so no pass fills a hole, cuts a thin part or opens a
hole on the region step's word alone. v5 checkpoints also run as ``--variant v4`` (the region step's changes
all taken).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...errors import SamSrError
from ..spec import VariantSpec
from ..v4 import RegionStage
from .changes import find_changes
from .model import SamSrV5, V5Config


class DecisionStage(RegionStage):
    """v4's region step, then the decision (see the module docstring), ``decision.passes`` times at
    most. ``info``: ``changes`` and ``taken`` (counts, summed over the passes), ``photo`` (the first
    pass's photo probability, in [0, 1]), ``passes`` (passes run), ``composed_changed`` (share of the
    photo's pixels that differ from the coarse mask afterwards), and ``cascade`` (the ``kept``
    settings) when no pass took a change."""

    def __call__(self, source, image, coarse, rng=None):
        settings = self.model.settings()
        binary = np.asarray(coarse, np.float32) >= 0.5
        mask, changes_seen, taken, photo = coarse, 0, 0, None
        for passes in range(1, int(settings["passes"]) + 1):
            result, n, k, p = self.one_pass(source, image, mask, settings)
            changes_seen += n
            if passes == 1:
                photo = p
            if not k:
                break          # the same mask would give the same pass again
            taken += k
            mask = result      # bool: the next pass reads it as its coarse mask (0.0 / 1.0)
        out = mask if taken else binary
        info = {"changes": changes_seen, "taken": taken, "photo": photo, "passes": passes,
                "composed_changed": float((out != binary).mean())}
        if not taken and settings.get("kept"):
            info["cascade"] = dict(settings["kept"])    # the coarse mask kept whole: its boundary as such
        return out, None, info

    def kept_settings(self) -> dict:
        """The decision's ``kept`` cascade settings: those a photo gets when no change is taken."""
        if self.model is None:
            raise SamSrError(f"the {type(self).__name__} is not bound to its model")
        return dict(self.model.settings().get("kept") or {})

    def one_pass(self, source, image, coarse, settings) -> tuple[np.ndarray, int, int, float]:
        """One region pass over ``coarse`` (float32 or bool (H, W)): (the mask with the changes taken,
        bool (H, W); changes proposed; changes taken; the photo's probability)."""
        c, logits, info, radius = self.region(source, image, coarse)
        binary = c >= 0.5
        changes = find_changes(binary, c, logits, radius, list(info["sam"]),
                               [float(i.get("predicted_iou", 0.0)) for i in info["sam_info"]])
        p_change, p_photo = self.model.decision.probabilities(changes.features, changes.photo)
        take = decide(changes, p_change, p_photo, settings)
        return changes.apply(binary, take), len(changes), int(take.sum()), p_photo


def decide(changes, p_change: np.ndarray, p_photo: float, settings: dict) -> np.ndarray:
    """bool (K,): the changes taken, by the rule of the module docstring."""
    from .changes import CHANGE_FEATURES
    if len(changes) == 0 or p_photo < float(settings["photo"]):
        return np.zeros(len(changes), bool)
    f = changes.features
    need = np.where(needs_strong(f, settings), float(settings["strong"]), float(settings["take"]))
    removal = f[:, CHANGE_FEATURES.index("is_addition")] < 0.5
    opens = removal & (np.asarray(changes.opens_hole) >= float(settings["hole"]))
    need = np.where(opens, np.maximum(need, float(settings["opens"])), need)
    return p_change >= need


def needs_strong(features: np.ndarray, settings: dict) -> np.ndarray:
    """bool (K,): the changes that need ``strong`` rather than ``take`` (the module docstring): an
    addition that fills a hole (``hole``), a removal that cuts a thin part (``thin``) or a big one
    (``big`` of the coarse mask's area or more), and an addition of ``big_add`` of it or more where
    ``big_add`` is above 0. ``features``: float32 (K, N_CHANGE + N_PHOTO) change features. Shared by
    inference (:func:`decide`) and the decision's threshold selection."""
    from .changes import CHANGE_FEATURES
    f = features
    hole = f[:, CHANGE_FEATURES.index("fills_hole")] >= float(settings["hole"])
    addition = f[:, CHANGE_FEATURES.index("is_addition")] >= 0.5
    log_share = f[:, CHANGE_FEATURES.index("log_area_vs_coarse")]
    thin = ~addition & (f[:, CHANGE_FEATURES.index("thickness")] < float(settings["thin"]))
    big = ~addition & (log_share >= np.log(max(float(settings["big"]), 1e-9)))
    big_add = float(settings.get("big_add") or 0.0)
    big_addition = addition & (log_share >= np.log(big_add)) if big_add > 0.0 else np.zeros(len(f), bool)
    return hole | thin | big | big_addition


SPEC = VariantSpec(
    name="v5", model=SamSrV5, config=V5Config, defaults={"extra_channels": 0}, fixed=("extra_channels",),
    sam_stage=DecisionStage, default_sam_checkpoint="weights/mobile_sam.pt", default_sam_type="vit_t",
    default_checkpoint="weights/sam_sr_v5.pt",
    summary="v4's region step with a learned keep-or-change decision, then the CRM cascade trained on sod "
            "(the default until 2026-12-07: its boundary step draws sod's outward rim)")

#: sam-sr's default: v5 with a boundary step trained where the truth sits on the edge and on right
#: masks (``configs/crm_r18/crm_r18_edge.yaml``, written in by ``sam-sr export --boundary-from``),
#: and the ``opens`` rule set to never (``--decision opens=1.01``). It keeps right boundaries (fur,
#: matting alphas, masks on the edge) where v5 draws an outward rim, and gains less on sod's saliency
#: maps, whose truth runs beyond the edge (docs/MODEL_CARD.md).
SPEC_EDGE = replace(
    SPEC, name="v5-edge", runs_checkpoints_of=("v5",), default_checkpoint="weights/sam_sr_v5_edge.pt",
    summary="the default: v5 whose boundary step keeps right boundaries (no outward rim) and which "
            "opens no hole on the region step's word alone")

#: v5-edge whose region network was fine-tuned on coarse masks with wrong holes (filled or opened:
#: ``configs/v5/region_holes.yaml``) and whose decision was trained again over it
#: (``configs/v5/decision_holes.yaml``); v5-edge's boundary step and ``opens`` rule
#: (``configs/recipes/v5_holes.yaml``). Not the default: it fills fewer holes (wild/bike.jpg) and
#: gains more on sod's saliency maps, but harms more right masks (docs/MODEL_CARD.md).
SPEC_HOLES = replace(
    SPEC, name="v5-holes", runs_checkpoints_of=("v5",), default_checkpoint="weights/sam_sr_v5_holes.pt",
    summary="v5-edge with a region step fine-tuned on wrong holes and its decision trained again: "
            "fewer holes filled, more right masks harmed than the default")
