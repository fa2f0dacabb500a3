"""SAM-SR v3.1-v3.4: SAM's image embedding inside the refiner (:mod:`sam_sr.models.sam_sr_v3`).

The four variants differ in how the coarse mask reaches the SAM branch (``mask_mode``): not at all
(v3.1), a CNN mask embedding (v3.2), global (v3.3) or windowed (v3.4) multi-head attention.
"""
from __future__ import annotations

from ...sam.stage import SamStage
from ..spec import VariantSpec
from .model import SamSrV3, V3Config


class SamEmbeddingStage(SamStage):
    """SAM's image embedding, float32 (1, C, 64, 64), as the refiner's extra input."""

    uses_embedding = True

    def __call__(self, source, image, coarse, rng=None):
        return coarse, source.embedding(image), {}


class SamSrV31(SamSrV3):
    """SAM-SR v3.1: the mask enters only through the shallow CNN (``mask_mode="none"``)."""

    variant = "v3.1"


class SamSrV32(SamSrV3):
    """SAM-SR v3.2: a CNN mask embedding added to the projected SAM features (``mask_mode="embed"``)."""

    variant = "v3.2"


class SamSrV33(SamSrV3):
    """SAM-SR v3.3: global multi-head attention over SAM features + mask embedding (``"global"``)."""

    variant = "v3.3"


class SamSrV34(SamSrV3):
    """SAM-SR v3.4: windowed multi-head attention over SAM features + mask embedding (``"window"``)."""

    variant = "v3.4"


def _spec(model: type[SamSrV3], mode: str, summary: str) -> VariantSpec:
    return VariantSpec(name=model.variant, model=model, config=V3Config, defaults={"mask_mode": mode},
                       fixed=("mask_mode",), extra_channels=256, sam_stage=SamEmbeddingStage, summary=summary)


SPEC_31 = _spec(SamSrV31, "none", "SAM embedding + shallow CNN; the mask only in the CNN")
SPEC_32 = _spec(SamSrV32, "embed", "SAM embedding + a CNN mask embedding")
SPEC_33 = _spec(SamSrV33, "global", "SAM embedding + global mask attention")
SPEC_34 = _spec(SamSrV34, "window", "SAM embedding + windowed mask attention")
