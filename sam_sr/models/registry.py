"""Model registry: a variant name -> model class and config class, as in segment_anything / timm."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..errors import SamSrError
from .crm import CRM, CRMConfig

_REGISTRY: dict[str, tuple[type[nn.Module], Callable[[dict], Any]]] = {}


def register_variant(name: str, model_cls: type[nn.Module], config_from_dict: Callable[[dict], Any]):
    """Register a refiner variant under ``name`` (e.g. ``"crm"``)."""
    _REGISTRY[name] = (model_cls, config_from_dict)


def available_variants() -> list[str]:
    """Names of registered variants, sorted."""
    return sorted(_REGISTRY)


def build_model(variant: str = "crm", config: dict | None = None) -> nn.Module:
    """Build a refiner from a variant name and a model-config dict.

    Raises:
        SamSrError: unknown variant or bad config keys.
    """
    if variant not in _REGISTRY:
        raise SamSrError(f"unknown variant {variant!r}; available: {available_variants()}")
    model_cls, from_dict = _REGISTRY[variant]
    return model_cls(from_dict(config or {}))


register_variant("crm", CRM, CRMConfig.from_dict)
