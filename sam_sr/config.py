"""YAML configs with defaults and ``key=value`` command-line overrides.

A config has the sections ``model`` (see :class:`sam_sr.models.CRMConfig`, or
:class:`sam_sr.models.sam_sr_v3.V3Config` for v3.x), ``data``, ``sam`` (SAM-SR variants) and ``train``.
Overrides use dotted keys and YAML values, e.g. ``train.iterations=200 data.crop_size=192``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import SamSrError

DEFAULTS: dict[str, Any] = {
    "variant": "crm",
    "model": {},
    "data": {
        "datasets": [],            # list of {layout, root, ids_file?, coarse_sources?}
        "crop_size": 224,
        "crop_scale": [0.3, 1.0],      # resized crops: fraction of the image area per crop
        "crop_mode": "resized",        # resized | native (crops at about the image's own scale)
        "native_scale": [0.75, 1.33],  # native crops: random rescale factor range before cropping
        "real_coarse_prob": 0.5,   # use a sample's real coarse masks (when it has any) this often
        "iou_range": [0.8, 1.0],   # CascadePSP perturbation target IoU
        "low_iou_range": [0.5, 0.85],
        "scale_factors": [4, 8, 16],
        "mode_weights": {"perturb": 0.5, "scale_gap": 0.2, "missing_part": 0.1, "spurious": 0.1,
                         "soft": 0.1},
        "soft_prob": 0.2,
        "num_workers": 2,
    },
    "sam": {                       # SAM-SR variants: the SAM model and its cache of outputs
        "type": "vit_t",
        "checkpoint": None,
        "cache": "cache/sam",
        "points_per_side": 8,      # automatic-mask grid (v1, v2.1); cached as masks-p<N>
        "n_points": 9,             # v2.2 prompt points (groups of 3)
        "v1": {"min_cover": 0.5, "sparsity_min": 0.1, "deformation_max": 0.3},
    },
    "train": {
        "out_dir": "runs/crm",
        "iterations": 1000,
        "batch_size": 8,
        "lr": 2.25e-4,
        "weight_decay": 1e-4,
        "optimizer": "adam",       # adam (L2 in the gradient, CRM) | adamw (decoupled weight decay)
        "schedule": "cosine",      # cosine | step
        "milestones": [0.5, 0.8333],  # fractions of iterations, for the step schedule (CRM)
        "gamma": 0.1,
        "warmup": 0,
        "loss_weights": {"bce": 1.0, "l1": 0.5, "l2": 0.5, "grad": 2.0},
        "query_points": 0,         # 0: decode the whole crop; N: N sampled query points per crop
        "boundary_frac": 0.75,     # share of sampled points near the boundary / coarse errors
        "point_band": 0,           # >0: focused points lie within this many px of the coarse contour
        "mixed_precision": "no",  # no | fp16 | bf16 (passed to accelerate)
        "seed": 0,
        "log_every": 20,
        "image_every": 200,
        "ckpt_every": 200,
        "resume": True,
        "max_minutes": 0,          # stop (and checkpoint) after this wall time; 0 = no limit
        "init_checkpoint": None,   # start from this checkpoint's weights (fine-tuning)
        "init_skip": None,         # then set the mask skip's scale to this (null = keep the loaded one)
        "stop_at": 0,              # stop at this iteration (schedule still spans `iterations`); 0 = off
        "lr_mult": {},             # {parameter-name prefix: lr multiplier}, e.g. {pixel_head: 10}
    },
    # the model's recommended inference settings (CascadeConfig fields, e.g. decode: contour:8),
    # stored in its checkpoints and used by Refiner.from_checkpoint unless overridden
    "inference": {},
}


#: Sections whose keys are free-form here (validated by the model config or the synthesizer).
_FREE = {"model", "data.mode_weights", "sam.v1", "inference", "train.lr_mult"}


def _merge(base: dict, new: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        key = f"{path}{k}"
        if k not in base and path.rstrip(".") not in _FREE:
            raise SamSrError(f"unknown config key {key!r}")
        if isinstance(base.get(k), dict) and isinstance(v, dict):
            out[k] = _merge(base[k], v, f"{key}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_by_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """Set ``cfg['a']['b'] = value`` for ``dotted='a.b'``; raises :class:`SamSrError` on bad keys."""
    keys = dotted.split(".")
    nested: Any = value
    for k in reversed(keys[1:]):
        nested = {k: nested}
    merged = _merge(cfg, {keys[0]: nested})
    cfg.clear()
    cfg.update(merged)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides.

    Raises:
        SamSrError: missing or invalid YAML, unknown keys, malformed overrides.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SamSrError(f"config not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SamSrError(f"invalid YAML in {p}: {exc}") from exc
        if not isinstance(data, dict):
            raise SamSrError(f"config {p} must be a mapping")
        cfg = _merge(cfg, data)
    for item in overrides or []:
        if "=" not in item:
            raise SamSrError(f"override {item!r} must be key=value")
        k, v = item.split("=", 1)
        set_by_dotted(cfg, k.strip(), yaml.safe_load(v))
    return cfg
