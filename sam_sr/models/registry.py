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


def _with_extra(channels: int) -> Callable[[dict], CRMConfig]:
    def from_dict(d: dict) -> CRMConfig:
        cfg = CRMConfig.from_dict({**d, "extra_channels": d.get("extra_channels", channels)})
        if cfg.extra_channels != channels:
            raise SamSrError(f"this variant needs extra_channels={channels}")
        return cfg
    return from_dict


class SamSrV1(CRM):
    """SAM-SR v1: a CRM refiner whose coarse mask is replaced by a union of SAM masks (inference)."""

    variant = "v1"


class SamSrV21(CRM):
    """SAM-SR v2.1: CRM with 3 extra input channels, the RGB map of SAM masks."""

    variant = "v2.1"


class SamSrV22(CRM):
    """SAM-SR v2.2: CRM with 1 extra input channel, SAM's mask from points of the coarse mask."""

    variant = "v2.2"


register_variant("crm", CRM, CRMConfig.from_dict)
register_variant("v1", SamSrV1, _with_extra(0))
register_variant("v2.1", SamSrV21, _with_extra(3))
register_variant("v2.2", SamSrV22, _with_extra(1))


def _register_v3() -> None:
    from .sam_sr_v3 import V3_VARIANTS, _v3
    for name, mode in V3_VARIANTS.items():
        register_variant(name, *_v3(mode, name))


_register_v3()
