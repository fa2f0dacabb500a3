"""Export a training checkpoint as an inference checkpoint (``sam-sr export``).

The result holds the weights, the model config, the training config and the iteration, without the
optimizer; ``inference`` settings (:class:`~sam_sr.inference.cascade.CascadeConfig` fields) are stored
in its config's ``inference`` section, which :meth:`sam_sr.Refiner.from_checkpoint` uses unless told
otherwise. The shipped ``sam_sr/weights/crm_r18.pt`` was made this way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import load_model, save_checkpoint
from .inference.cascade import CascadeConfig
from .io import check_output_path


def export_checkpoint(src: str | Path, dst: str | Path, inference: dict[str, Any] | None = None,
                      force: bool = False) -> dict[str, Any]:
    """Write the inference checkpoint of ``src`` to ``dst`` (atomically).

    Args:
        inference: recommended cascade settings to store (merged over the ones ``src`` has).
        force: overwrite an existing ``dst``.

    Returns:
        ``{"variant", "iteration", "bytes"}`` of the written file.

    Raises:
        SamSrError: an existing ``dst`` without ``force``, an unreadable ``src``, invalid settings
            (checked before anything is written).
    """
    check_output_path(dst, force)
    model, state = load_model(src)
    keep = {k: state[k] for k in ("iteration", "config") if k in state}
    if inference:
        CascadeConfig(**inference)   # validates the settings before anything is written
        config = dict(keep.get("config") or {})
        config["inference"] = {**(config.get("inference") or {}), **inference}
        keep["config"] = config
    save_checkpoint(dst, model, state["variant"], state["model_config"], **keep)
    return {"variant": state["variant"], "iteration": state.get("iteration"), "bytes": Path(dst).stat().st_size}
