"""Export a training checkpoint as an inference checkpoint (``sam-sr export``).

The result holds the weights, the model config, the training config and the iteration, without the
optimizer; ``inference`` settings (:class:`~sam_sr.inference.cascade.CascadeConfig` fields) are stored
in its config's ``inference`` section, which :meth:`sam_sr.Refiner.from_checkpoint` uses unless told
otherwise, with ``valid_decode``, the decode modes the model is valid for
(:mod:`sam_sr.inference.decode_validity`). The shipped ``sam_sr/weights/crm_r18.pt`` was made this way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import load_model, save_checkpoint
from ..imaging.outputs import check_outputs
from ..inference.cascade import CascadeConfig
from ..inference.decode_validity import KEY as VALID_DECODE
from ..inference.decode_validity import parse_modes


def export_checkpoint(src: str | Path, dst: str | Path, inference: dict[str, Any] | None = None,
                      force: bool = False) -> dict[str, Any]:
    """Write the inference checkpoint of ``src`` to ``dst`` (atomically).

    Args:
        inference: recommended cascade settings to store (merged over the ones ``src`` has), and
            optionally ``valid_decode``: the decode mode names the model is valid for (a list, or a
            comma-separated string), e.g. ``["contour"]``.
        force: overwrite an existing ``dst``.

    Returns:
        ``{"variant", "iteration", "bytes"}`` of the written file.

    Raises:
        SamSrError: an existing ``dst`` without ``force``, ``dst`` that is ``src`` (even with
            ``force``), an unreadable ``src``, invalid settings (checked before anything is written).
    """
    check_outputs({"src": src}, {"dst": dst}, force)
    model, state = load_model(src)
    keep = {k: state[k] for k in ("iteration", "config") if k in state}
    if inference:
        inference = dict(inference)
        if inference.get(VALID_DECODE) is not None:
            inference[VALID_DECODE] = parse_modes(inference[VALID_DECODE], VALID_DECODE)
        CascadeConfig(**{k: v for k, v in inference.items() if k != VALID_DECODE})   # validated first
        if inference.get("decode") is not None:
            inference["decode"] = str(inference["decode"])    # stored as its text (a DecodeMode is parsed)
        config = dict(keep.get("config") or {})
        config["inference"] = {**(config.get("inference") or {}), **inference}
        keep["config"] = config
    save_checkpoint(dst, model, state["variant"], state["model_config"], **keep)
    return {"variant": state["variant"], "iteration": state.get("iteration"), "bytes": Path(dst).stat().st_size}
