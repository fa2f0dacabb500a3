"""The variant registry: the one list of refiner variants, as in segment_anything's / timm's registries.

Each variant is one :class:`VariantSpec` (name, model class and config, default model config, the
SAM input stage, extra input channels, which checkpoints it runs) in one module of this package.
Adding a variant means one file here (its spec, and its model class or SAM stage if they are new) and
one entry in ``_ENTRIES`` below; the predictor (``--variant``), training (``variant:`` in a config),
checkpoints, the ablation and the docs' variant list all read the registry.

The registry imports a variant's module (and so torch) only when its spec is first asked for:
:func:`available_variants` names them without, for the command line's help.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from ..errors import SamSrError
from .spec import VariantSpec

#: Every variant, in order: name -> (module of this package, name of its VariantSpec there).
_ENTRIES: dict[str, tuple[str, str]] = {
    "crm": ("crm", "SPEC"),
    "crm-full": ("crm", "SPEC_FULL"),
    "v1": ("v1", "SPEC"),
    "v2.1": ("v2_1", "SPEC"),
    "v2.2": ("v2_2", "SPEC"),
    "v3.1": ("v3", "SPEC_31"),
    "v3.2": ("v3", "SPEC_32"),
    "v3.3": ("v3", "SPEC_33"),
    "v3.4": ("v3", "SPEC_34"),
    "sam-prompt": ("sam_prompt", "SPEC"),
    "v4": ("v4", "SPEC"),
    "v5": ("v5", "SPEC"),
    "v5-edge": ("v5", "SPEC_EDGE"),
    "v5-holes": ("v5", "SPEC_HOLES"),
}


class _Registry(MutableMapping):
    """name -> :class:`VariantSpec`, loading each spec's module on first access; specs may be added
    (e.g. by tests) and removed again."""

    def __init__(self, entries: dict[str, tuple[str, str]]):
        self._entries = dict(entries)
        self._specs: dict[str, VariantSpec] = {}

    def __getitem__(self, name: str) -> VariantSpec:
        if name not in self._specs:
            module, attr = self._entries[name]
            spec = getattr(importlib.import_module(f".{module}", __name__), attr)
            if spec.name != name:
                raise SamSrError(f"variant entry {name!r} names the spec of {spec.name!r}")
            self._specs[name] = spec
        return self._specs[name]

    def __setitem__(self, name: str, spec: VariantSpec) -> None:
        self._specs[name] = spec
        self._entries.setdefault(name, ("", ""))

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._specs.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


REGISTRY: MutableMapping[str, VariantSpec] = _Registry(_ENTRIES)


def available_variants() -> list[str]:
    """Names of the registered variants, in registry order (imports none of them)."""
    return list(REGISTRY)


def get_variant(name: str) -> VariantSpec:
    """The spec of variant ``name``.

    Raises:
        SamSrError: unknown variant.
    """
    if name not in REGISTRY:
        raise SamSrError(f"unknown variant {name!r}; available: {available_variants()}")
    return REGISTRY[name]


def build_model(variant: str = "crm", config: dict | None = None):
    """Build a refiner (a :class:`~sam_sr.models.base.RefinerModel`) from a variant name and a
    model-config dict (over the variant's defaults).

    Raises:
        SamSrError: unknown variant or bad config keys/values.
    """
    return get_variant(variant).build(config)


__all__ = ["VariantSpec", "REGISTRY", "available_variants", "get_variant", "build_model"]
