"""Inference: the public predictor :class:`Refiner` (:mod:`.predictor`), the cascade, query selection
(decode modes), sparse steps, and label maps refined class by class (:mod:`.labels`).

``Refiner``, ``CascadeConfig``, ``cascade_refine``, ``prepare_mask`` and ``DEFAULT_CHECKPOINT`` are
imported on first use (PEP 562): importing a torch-free submodule such as :mod:`.decode_mode` loads
no torch.
"""
from __future__ import annotations

_LAZY = {"CascadeConfig": "cascade", "cascade_refine": "cascade", "DEFAULT_CHECKPOINT": "predictor",
         "Refiner": "predictor", "prepare_mask": "predictor"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
