"""The variant registry: the one list of refiner variants, as in segment_anything's / timm's registries.

Each variant is one :class:`VariantSpec` (name, model class and config, default model config, the
SAM input stage, extra input channels, which checkpoints it runs). Adding a variant means one file in
this package (its spec, and its model class or SAM stage if they are new) and one entry in
``_SPECS`` below; the predictor (``--variant``), training (``variant:`` in a config), checkpoints,
the ablation and the docs' variant list all read the registry.
"""
from __future__ import annotations

from ..errors import SamSrError
from ..models.base import RefinerModel
from . import crm, sam_prompt, v1, v2_1, v2_2, v3, v4
from .spec import VariantSpec

_SPECS: tuple[VariantSpec, ...] = (
    crm.SPEC,
    v1.SPEC,
    v2_1.SPEC,
    v2_2.SPEC,
    v3.SPEC_31,
    v3.SPEC_32,
    v3.SPEC_33,
    v3.SPEC_34,
    sam_prompt.SPEC,
    v4.SPEC,
)

REGISTRY: dict[str, VariantSpec] = {s.name: s for s in _SPECS}


def available_variants() -> list[str]:
    """Names of the registered variants, in registry order."""
    return list(REGISTRY)


def get_variant(name: str) -> VariantSpec:
    """The spec of variant ``name``.

    Raises:
        SamSrError: unknown variant.
    """
    if name not in REGISTRY:
        raise SamSrError(f"unknown variant {name!r}; available: {available_variants()}")
    return REGISTRY[name]


def build_model(variant: str = "crm", config: dict | None = None) -> RefinerModel:
    """Build a refiner from a variant name and a model-config dict (over the variant's defaults).

    Raises:
        SamSrError: unknown variant or bad config keys/values.
    """
    return get_variant(variant).build(config)


__all__ = ["VariantSpec", "REGISTRY", "available_variants", "get_variant", "build_model"]
