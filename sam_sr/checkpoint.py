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
    _write(path, state)


def _write(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` of ``state`` written atomically (temporary file, then rename)."""
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
        cfg["image_features_checkpoint"] = None
    model = build_model(ck_variant, cfg)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise SamSrError(f"checkpoint {path} does not match its model config: {exc}") from exc
    return model.eval(), state


#: the prefixes of a refiner's pretrained image-feature tensors (:mod:`sam_sr.models.image_features`)
_IMAGE_FEATURE_TENSORS = ("image_features.", "feature_proj.")


def replace_boundary(region_path: str | os.PathLike, boundary_path: str | os.PathLike | None,
                     out_path: str | os.PathLike, force: bool = False,
                     decision: dict[str, Any] | None = None) -> dict[str, Any]:
    """A v4/v5 checkpoint whose boundary step (its CRM refiner's weights) comes from a CRM checkpoint,
    and/or whose keep-or-change decision settings are changed (``sam-sr export --boundary-from
    --decision``).

    v4 and v5 hold the band refiner's weights at the top level of their state dict (``encoder``,
    ``fusion``, ``decoder``, ``pixel_head``, ``skip_scale``) beside the region network and v5's decision;
    this copies ``region_path`` with exactly those tensors taken from ``boundary_path``, and records the
    source as ``boundary_from``. A boundary refiner with pretrained image features
    (``image_features: tinyvit``) brings their tensors and its ``image_features`` setting along.
    Written atomically.

    Args:
        region_path: a v4 or v5 checkpoint (the region step, the decision, the inference settings).
        boundary_path: a ``crm`` checkpoint (training or exported) of the same architecture; ``None``
            keeps ``region_path``'s boundary step.
        out_path: the new checkpoint; an existing file is replaced only with ``force``.
        decision: v5 only: decision settings to set (:data:`sam_sr.variants.v5.model.DECISION_DEFAULTS`
            keys, e.g. ``{"opens": 1.01}``), in the model config and the training config alike;
            recorded as ``decision_set``.

    Returns:
        the written checkpoint dict.

    Raises:
        SamSrError: unreadable checkpoints, wrong variants, a CRM whose tensors' names or shapes differ
            from the boundary step's, decision settings on a v4 checkpoint or unknown or invalid ones,
            nothing to change, or ``out_path`` existing without ``force``.
    """
    out = Path(out_path)
    if out.exists() and not force:
        raise SamSrError(f"{out} exists; pass force to replace it")
    if boundary_path is None and not decision:
        raise SamSrError("nothing to change: give a boundary checkpoint and/or decision settings")
    base = read_checkpoint(region_path)
    if base.get("variant") not in ("v4", "v5"):
        raise SamSrError(f"{region_path} is a {base.get('variant')} checkpoint; a v4 or v5 one is needed")
    state = dict(base)
    if boundary_path is not None:
        crm = read_checkpoint(boundary_path)
        if crm.get("variant") != "crm":
            raise SamSrError(f"{boundary_path} is a {crm.get('variant')} checkpoint; a crm one is needed")
        steps = ("region.", "decision.")
        old = {k: v for k, v in base["model"].items() if not k.startswith(steps + _IMAGE_FEATURE_TENSORS)}
        new = crm["model"]
        core = {k for k in new if not k.startswith(_IMAGE_FEATURE_TENSORS)}
        if set(old) != core or any(tuple(old[k].shape) != tuple(new[k].shape) for k in old):
            raise SamSrError(f"{boundary_path}'s refiner does not match {region_path}'s boundary step "
                             f"(different tensors or shapes)")
        state["model"] = {**{k: v for k, v in base["model"].items() if k.startswith(steps)},
                          **{k: v.clone() for k, v in new.items()}}
        # the boundary may bring or drop pretrained image features (CRMConfig.image_features): the
        # model config follows it, and the features' weights travel in the tensors, never as a path
        features = {"image_features": str((crm.get("model_config") or {}).get("image_features") or ""),
                    "image_features_checkpoint": None}
        if features["image_features"] or base["model_config"].get("image_features"):
            state["model_config"] = {**base["model_config"], **features}
            if "model" in (base.get("config") or {}):
                state["config"] = {**base["config"], "model": {**base["config"]["model"], **features}}
        state["boundary_from"] = {"checkpoint": Path(boundary_path).name, "iteration": crm.get("iteration")}
    if decision:
        if base.get("variant") != "v5":
            raise SamSrError(f"{region_path} is a {base.get('variant')} checkpoint; decision settings need a v5 one")
        from .variants.v5.model import V5Config

        def with_decision(model_cfg: dict[str, Any]) -> dict[str, Any]:
            return {**model_cfg, "decision": {**dict(model_cfg.get("decision") or {}), **decision}}
        # unknown keys and bad values fail here; the values are kept as the config reads them
        # (``passes=3.0`` from the command line is stored as 3)
        checked = V5Config.from_dict(with_decision(state["model_config"])).decision
        decision = {k: checked[k] for k in decision}
        state["model_config"] = with_decision(state["model_config"])
        if "model" in (state.get("config") or {}):
            state["config"] = {**state["config"], "model": with_decision(state["config"]["model"])}
        state["decision_set"] = {**dict(base.get("decision_set") or {}), **decision}
    _write(out, state)
    return state
