"""Training configs: code defaults, a YAML file (which may extend a base file), ``key=value`` overrides.

Merged with OmegaConf (https://omegaconf.readthedocs.io). A config has the sections ``variant``,
``model`` (the variant's model config, see :mod:`sam_sr.variants`), ``data``, ``sam`` (variants that
use SAM), ``train`` and ``inference`` (the model's recommended cascade settings). Loading goes:

1. :data:`DEFAULTS` below;
2. the file's ``extends:`` chain, base first (a path relative to the file; e.g. every stage of the
   shipped model extends ``configs/crm_r18/crm_r18_base.yaml`` and states only what it changes);
3. the file itself;
4. command-line overrides with dotted keys and YAML values, e.g. ``train.iterations=200
   data.crop_size=192``.

Unknown keys are errors at every step, except inside the free-form sections (``model``,
``data.mode_weights``, ``sam`` beyond the SAM model's own keys, ``inference``, ``train.lr_mult``,
``train.loss_weights``, ``region``; their keys are checked by the model config, the synthesizers,
the variant's SAM stage, the losses, the cascade and the region trainer). Values may use ``${data:REL}``: the path REL inside the
data folder named by the environment variable ``SAM_SR_DATA`` (:mod:`sam_sr.paths`), e.g.
``root: ${data:sod}``; loading such a config without ``SAM_SR_DATA`` set is an error that says so.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .errors import SamSrError
from .paths import data_path

DEFAULTS: dict[str, Any] = {
    "variant": "crm",
    "task": "refiner",             # refiner | region (SAM-SR v4's region step, sam_sr.training.region)
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
    "sam": {                       # variants that use SAM: the SAM model and its cache of outputs; any
        "type": "vit_t",           # other key is a setting of the variant's SAM stage, checked by it
        "checkpoint": None,        # (e.g. v1's `v1`, v2.2's `n_points`, sam-prompt's `prompt`)
        "cache": "cache/sam",
        "points_per_side": 8,      # automatic-mask grid (v1, v2.1); cached as masks-p<N>
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
        "resume": True,            # continue from <out_dir>/state (model, optimizer, scheduler, RNG, data)
        "init_checkpoint": None,   # start from this checkpoint's weights (fine-tuning)
        "init_skip": None,         # then set the mask skip's scale to this (null = keep the loaded one)
        "stop_at": 0,              # stop at this iteration (the schedule still spans `iterations`); 0 = off
        "lr_mult": {},             # {parameter-name prefix: lr multiplier}, e.g. {pixel_head: 10}
        "trainable": [],           # parameter-name prefixes that train; the rest frozen, in eval mode ([] = all)
        "keep_at": [],             # refiner runs: also keep a checkpoint iter_<N>.pt at each of these iterations
    },
    "region": {},                  # task: region: the region trainer's section, checked by it
    # the model's recommended inference settings (CascadeConfig fields, e.g. decode: contour:8),
    # stored in its checkpoints and used by Refiner.from_checkpoint unless overridden
    "inference": {},
}


#: Sections whose keys are free-form here (validated by the model config or the synthesizer).
_FREE = ("model", "data.mode_weights", "sam", "inference", "train.lr_mult", "train.loss_weights", "region")

#: The key naming a config's base file.
EXTENDS = "extends"


#: Checked values: dotted key -> (kind, lowest value). Kinds: ``int`` (an integer >= lowest),
#: ``pos`` (a number > 0), ``num`` (a number >= lowest), ``frac`` (a number in [0, 1]).
VALUE_CHECKS: dict[str, tuple[str, float]] = {
    "train.iterations": ("int", 1), "train.batch_size": ("int", 1), "train.ckpt_every": ("int", 1),
    "train.log_every": ("int", 1), "train.image_every": ("int", 1), "train.seed": ("int", 0),
    "train.warmup": ("int", 0), "train.query_points": ("int", 0), "train.point_band": ("int", 0),
    "train.stop_at": ("int", 0), "train.lr": ("num", 0), "train.weight_decay": ("num", 0),
    "train.gamma": ("pos", 0), "train.boundary_frac": ("frac", 0),
    "data.crop_size": ("int", 1), "data.num_workers": ("int", 0), "data.soft_prob": ("frac", 0),
    "data.real_coarse_prob": ("frac", 0), "sam.points_per_side": ("int", 1),
}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_values(cfg: dict[str, Any]) -> None:
    """Check the numeric training settings of a loaded config (:data:`VALUE_CHECKS`), so a bad value such as ``train.iterations=abc``, ``train.lr=fast``
    or ``train.batch_size=0`` fails before anything is built, naming the key.

    Raises:
        SamSrError: ``<key> must be ..., got <value>`` for the first bad value.
    """
    for key, (kind, low) in VALUE_CHECKS.items():
        section, _, name = key.partition(".")
        if name not in (cfg.get(section) or {}):
            continue
        v = cfg[section][name]
        if kind == "int":
            ok, want = isinstance(v, int) and not isinstance(v, bool) and v >= low, f"an integer >= {low:g}"
        elif kind == "pos":
            ok, want = _number(v) and v > 0, "a number > 0"
        elif kind == "num":
            ok, want = _number(v) and v >= low, f"a number >= {low:g}"
        else:
            ok, want = _number(v) and 0 <= v <= 1, "a number in [0, 1]"
        if not ok:
            raise SamSrError(f"config key {key} must be {want}, got {v!r}")
    keep = (cfg.get("train") or {}).get("keep_at") or []
    if not isinstance(keep, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in keep):
        raise SamSrError(f"config key train.keep_at must be a list of iterations >= 1, got {keep!r}")
    mp = (cfg.get("train") or {}).get("mixed_precision", "no")
    if mp not in MIXED_PRECISION:
        raise SamSrError(f"config key train.mixed_precision must be one of {list(MIXED_PRECISION)}, got {mp!r}")


#: The values of ``train.mixed_precision`` (accelerate's modes that train here).
MIXED_PRECISION = ("no", "fp16", "bf16")


def _normalise(cfg: dict[str, Any]) -> None:
    """YAML 1.1 reads an unquoted ``no`` as false, so ``train.mixed_precision=no`` (the way accelerate
    spells it) arrives as ``False``: read it as ``"no"``."""
    t = cfg.get("train")
    if isinstance(t, dict) and t.get("mixed_precision") is False:
        t["mixed_precision"] = "no"


def _data_resolver(rel: str = "") -> str:
    return str(data_path(rel))


OmegaConf.register_resolver("data", _data_resolver, replace=True)


def _defaults() -> DictConfig:
    """:data:`DEFAULTS` as a struct config (unknown keys are errors) with free-form sections."""
    cfg = OmegaConf.create(copy.deepcopy(DEFAULTS))
    OmegaConf.set_struct(cfg, True)
    for key in _FREE:
        OmegaConf.set_struct(OmegaConf.select(cfg, key), False)
    return cfg


def _merge(cfg: DictConfig, new: DictConfig, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, new)
    except ConfigKeyError as exc:
        raise SamSrError(f"unknown config key {exc.full_key!r} ({where})") from None
    except OmegaConfBaseException as exc:
        raise SamSrError(f"bad config value ({where}): {str(exc).splitlines()[0]}") from None


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> DictConfig:
    """One config file with its ``extends:`` chain merged in (base first); not yet checked against
    :data:`DEFAULTS`.

    Raises:
        SamSrError: a missing file, invalid YAML, a file that is not a mapping, a cycle of ``extends``.
    """
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"config not found: {p}" + (f" (extended by {_chain[-1]})" if _chain else ""))
    if p.resolve() in _chain:
        raise SamSrError(f"config {p} extends itself (through {[str(c) for c in _chain]})")
    try:
        node = OmegaConf.load(p) if p.read_text().strip() else OmegaConf.create({})
    except yaml.YAMLError as exc:
        raise SamSrError(f"invalid YAML in {p}: {exc}") from exc
    except OmegaConfBaseException as exc:
        raise SamSrError(f"invalid config {p}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(node, DictConfig):
        raise SamSrError(f"config {p} must be a mapping")
    base = node.pop(EXTENDS, None)
    if base is None:
        return node
    parent = read_yaml(p.parent / str(base), _chain + (p.resolve(),))
    return OmegaConf.merge(parent, node)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults, then the YAML file at ``path`` (with its ``extends`` chain), then ``key=value``
    overrides; returned as plain, resolved Python containers.

    Raises:
        SamSrError: missing or invalid YAML, unknown keys, malformed overrides, a ``${data:...}``
            value without ``SAM_SR_DATA`` set, a bad value (:func:`check_values`, naming the key).
    """
    cfg = _defaults()
    if path is not None:
        cfg = _merge(cfg, read_yaml(path), str(path))
    for item in overrides or []:
        key, eq, _ = item.partition("=")
        if not eq or not key.strip():
            raise SamSrError(f"override {item!r} must be key=value")
        try:
            new = OmegaConf.from_dotlist([item.strip()])
        except OmegaConfBaseException as exc:
            raise SamSrError(f"bad override {item!r}: {str(exc).splitlines()[0]}") from None
        cfg = _merge(cfg, new, f"override {item!r}")
    try:
        out = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0]
        _, ours, rest = first.partition("SamSrError raised while resolving interpolation: ")
        raise SamSrError(rest if ours else f"cannot resolve the config: {first}") from None
    _normalise(out)
    check_values(out)
    return out
