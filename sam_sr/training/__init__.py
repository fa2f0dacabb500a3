"""Training: one entry point, :func:`train`, for every stage of every recipe.

- :mod:`.refiner`: the refiner trainer (``task: refiner``: CRM and the SAM-SR variants), accelerate;
- :mod:`.region`: SAM-SR v4's region-step trainer (``task: region``);
- :mod:`.decision`: SAM-SR v5's keep-or-change decision (``task: decision``);
- :mod:`.state`: what both share: optimizer, learning-rate schedule, fine-tuning initialisation and
  the resumable state saved atomically;
- :mod:`.losses`, :mod:`.recipe` (a model's stages in order), :mod:`.export` (inference checkpoints).

Importing this package loads no torch: the trainers are imported when a run starts.
"""
from __future__ import annotations

from typing import Any


def train(cfg: dict[str, Any], accelerator=None) -> dict[str, Any]:
    """Train one stage from a loaded config (:func:`sam_sr.config.load_config`), by its ``task``:
    ``refiner`` (:func:`sam_sr.training.refiner.train_refiner`) or ``region``
    (:func:`sam_sr.training.region.train_region`).

    Args:
        cfg: the config, plain containers. accelerator: an ``accelerate.Accelerator`` to reuse
            (refiner task only; default: one built from ``train.mixed_precision``).

    Returns:
        The trainer's summary: ``{"iteration", "first_loss", "last_loss", "final_checkpoint", "wall_s", ...}``.

    Raises:
        SamSrError: a bad config value, an unknown task, a ``train.out_dir`` that is a file or cannot
            be written (checked before anything is built), and the trainers' own errors.
    """
    from ..config import check_values
    from ..errors import SamSrError
    from ..imaging.outputs import check_output_folder
    check_values(cfg)                            # also for configs built in code, not loaded
    valid = (cfg.get("inference") or {}).get("valid_decode")
    if valid is not None:                        # the decode modes the trained model is valid for
        from ..inference.decode_validity import parse_modes
        parse_modes(valid, "config key inference.valid_decode")
    check_output_folder(cfg["train"]["out_dir"], "train.out_dir")   # a file or unwritable: fail first
    task = cfg.get("task", "refiner")
    if task == "region":                         # SAM-SR v4's region step has its own trainer
        from .region import train_region
        return train_region(cfg)
    if task == "decision":                       # and SAM-SR v5's keep-or-change decision
        from .decision import train_decision
        return train_decision(cfg)
    if task != "refiner":
        raise SamSrError(f"unknown task {task!r} (refiner | region | decision)")
    from .refiner import train_refiner
    return train_refiner(cfg, accelerator)


__all__ = ["train"]
