"""SAM-SR v3.1-v3.4: SAM's image embedding inside the refiner (:mod:`sam_sr.variants.v3.model`).

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


def _spec(name: str, mode: str, summary: str) -> VariantSpec:
    return VariantSpec(name=name, model=SamSrV3, config=V3Config, defaults={"mask_mode": mode},
                       fixed=("mask_mode",), extra_channels=256, sam_stage=SamEmbeddingStage, summary=summary)


SPEC_31 = _spec("v3.1", "none", "SAM embedding + shallow CNN; the mask only in the CNN")
SPEC_32 = _spec("v3.2", "embed", "SAM embedding + a CNN mask embedding")
SPEC_33 = _spec("v3.3", "global", "SAM embedding + global mask attention")
SPEC_34 = _spec("v3.4", "window", "SAM embedding + windowed mask attention")
