"""SAM-SR v4, sam-sr's default: a region step on SAM's grid replaces the coarse mask where it is wrong
by regions, then the CRM cascade re-draws the boundary (:mod:`sam_sr.variants.v4.model`).

The SAM stage runs SAM (the bundled MobileSAM unless another is given): its image encoder once per
photo, its prompt decoder once per prompt setting; then the model's region network, and
:func:`sam_sr.variants.v4.region_step.compose` of its decisions with the coarse mask.
"""
from __future__ import annotations

import numpy as np

from ...errors import SamSrError
from ...sam.stage import SamStage
from ..spec import VariantSpec
from .model import SamSrV4, V4Config
from .region_step import compose, region_step


class RegionStage(SamStage):
    """The region step (see module docstring); needs the v4 model it runs for (:meth:`bind`).

    ``info``: ``changed`` (share of SAM-grid cells whose side the region network flipped) and
    ``composed_changed`` (share of the photo's pixels that differ from the coarse mask after
    :func:`compose`).
    """

    uses_embedding = True
    optional = True

    def __init__(self, settings=None):
        super().__init__(settings)
        self.model: SamSrV4 | None = None

    def bind(self, model) -> "RegionStage":
        if not isinstance(model, SamSrV4):
            raise SamSrError(f"the v4 region stage needs a v4 model, got {type(model).__name__}")
        self.model = model
        return self

    def region(self, source, image: np.ndarray, coarse: np.ndarray):
        """The region step of one photo: (coarse float32 (H, W), region logits float32 (H, W) at the
        photo's size, :func:`region_step`'s info, the composition's opening radius in px)."""
        if self.model is None:
            raise SamSrError(f"the {type(self).__name__} is not bound to its model")
        predictor = source.predictor(image)
        c = np.asarray(coarse, np.float32)
        dev = next(self.model.region.parameters()).device
        was_training = self.model.region.training
        self.model.region.eval()
        logits, info = region_step(self.model.region, predictor, image, c, self.model.prompt_configs(),
                                   device=dev)
        self.model.region.train(was_training)
        radius = int(round(float(self.model.config.compose) * max(c.shape) / 256))
        return c, logits, info, radius

    def __call__(self, source, image, coarse, rng=None):
        c, logits, info, radius = self.region(source, image, coarse)
        out = compose(c >= 0.5, logits, radius)
        info = {"changed": info["changed"], "composed_changed": float((out != (c >= 0.5)).mean())}
        return out, None, info


SPEC = VariantSpec(
    name="v4", model=SamSrV4, config=V4Config, defaults={"extra_channels": 0}, fixed=("extra_channels",),
    sam_stage=RegionStage, default_sam_checkpoint="weights/mobile_sam.pt", default_sam_type="vit_t",
    default_checkpoint="weights/sam_sr_v5.pt", runs_checkpoints_of=("v5",),
    summary="SAM's answers + a region network on SAM's grid fix regions (every change taken), then the CRM "
            "cascade re-draws the boundary")
