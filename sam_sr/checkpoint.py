"""sam-sr checkpoints: save atomically, load with clear errors.

A checkpoint is a ``torch.save`` dict with ``format == "sam-sr"``, ``variant``, ``model_config``,
``model`` (state dict), and for training runs ``optimizer``, ``scheduler``, ``iteration``, ``config``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import SamSrError
from .imaging.write import atomic_write_bytes
from .variants import build_model, get_variant

FORMAT = "sam-sr"


def save_checkpoint(path: str | os.PathLike, model: nn.Module, variant: str,
                    model_config: dict[str, Any], **extra: Any) -> None:
    """Write a checkpoint atomically (temporary file, then rename): an interrupted save never leaves
    a corrupt file at ``path``."""
    state = {"format": FORMAT, "variant": variant, "model_config": model_config,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a sam-sr checkpoint dict.

    Raises:
        SamSrError: missing file, unreadable/corrupt file, or not a sam-sr checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"checkpoint not found: {p}")
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        raise SamSrError(f"cannot read checkpoint {p}: {_load_failure(exc)}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise SamSrError(f"{p} is not a sam-sr checkpoint (no 'format: sam-sr' header); "
                         f"train one with train.py or omit --checkpoint to use the default model")
    return state


def _load_failure(exc: Exception) -> str:
    """Why torch could not read a file, without torch's advice to load it unsafely: a sam-sr checkpoint
    holds only tensors and plain values, and a file that needs more may run code when unpickled."""
    text = str(exc)
    if "Weights only load failed" in text or "weights_only" in text:
        return ("it holds Python objects besides tensors and plain values; sam-sr loads only weights "
                "(a file from elsewhere could run code when unpickled), so it is not a sam-sr checkpoint")
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return f"corrupt or not a PyTorch checkpoint ({first})"


def load_model(path: str | os.PathLike, variant: str | None = None) -> tuple[nn.Module, dict]:
    """Build the model a checkpoint describes and load its weights (eval mode, CPU).

    Args:
        variant: if given, the checkpoint must be runnable as this variant: of this variant, or of one
            whose checkpoints it runs (:attr:`VariantSpec.runs_checkpoints_of`, e.g. v1 runs CRM's).
            The model built is always the checkpoint's own variant.

    Raises:
        SamSrError: see :func:`read_checkpoint`; an unknown variant or a variant mismatch; weights
            that do not fit.
    """
    state = read_checkpoint(path)
    ck_variant = state.get("variant", "crm")
    if variant is not None and not get_variant(variant).accepts_checkpoint_of(ck_variant):
        accepted = " or ".join(repr(v) for v in (variant, *get_variant(variant).runs_checkpoints_of))
        raise SamSrError(f"checkpoint {path} is a {ck_variant!r} model, not {accepted}")
    cfg = dict(state.get("model_config") or {})
    if "backbone" in cfg:  # CRM family: the weights come from the checkpoint, never from timm
        cfg["pretrained"] = False
        cfg["backbone_checkpoint"] = None
    model = build_model(ck_variant, cfg)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise SamSrError(f"checkpoint {path} does not match its model config: {exc}") from exc
    return model.eval(), state
