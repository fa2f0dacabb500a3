"""Recipes: a model's whole training, every stage in order, as one command.

A recipe is a YAML file (``configs/recipes/<name>.yaml``)::

    stages:                        # training configs, run in this order (paths relative to this file)
      - ../crm_r18_stage1.yaml
      - ../crm_r18.yaml
    export:                        # optional: the inference checkpoint made from the last stage
      from: runs/crm_r18_pixel_sod2/final.pt
      to: runs/crm_r18_recipe.pt
      inference: {decode: "contour:2"}   # recommended cascade settings stored in it (optional)

or, for a v4/v5 checkpoint whose boundary step and/or decision settings are replaced
(:func:`sam_sr.checkpoint.replace_boundary`, as ``sam-sr export --boundary-from --decision``; with
``inference`` too, the settings are stored first, as ``sam-sr export --decode ...`` would)::

    export:
      from: sam_sr/weights/sam_sr_v5.pt
      to: runs/sam_sr_v5_edge_recipe.pt
      boundary_from: runs/crm_r18_edge/final.pt
      decision: {opens: 1.01}

:func:`run_recipe` trains each stage with :func:`sam_sr.training.train`. A stage whose ``final.pt``
already has its end iteration (``train.stop_at`` or ``train.iterations``) is skipped; an unfinished
one resumes from its state (``train.resume``), so rerunning an interrupted recipe continues where it
stopped. Stages stop on iterations only. ``sam-sr train --recipe crm_r18`` runs the shipped model's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from ..checkpoint import read_checkpoint
from ..config import load_config
from ..errors import SamSrError
from .export import export_checkpoint

#: Where ``--recipe NAME`` looks (relative to the current folder, the repository root).
RECIPE_DIR = Path("configs") / "recipes"


@dataclass
class Recipe:
    """A parsed recipe: ``stages`` (config paths, in order), ``export`` (``from``, ``to``,
    ``inference``) or None, and the file it came from."""

    path: Path
    stages: list[Path]
    export: dict[str, Any] | None = None


def find_recipe(name: str | Path) -> Path:
    """A recipe file: ``name`` itself if it is a file, else ``configs/recipes/<name>.yaml``.

    Raises:
        SamSrError: neither exists.
    """
    p = Path(name)
    if p.is_file():
        return p
    q = RECIPE_DIR / f"{name}.yaml"
    if q.is_file():
        return q
    known = sorted(x.stem for x in RECIPE_DIR.glob("*.yaml")) if RECIPE_DIR.is_dir() else []
    raise SamSrError(f"recipe not found: {name} (neither a file nor {q}); known: {known}")


def load_recipe(name: str | Path) -> Recipe:
    """Read and check a recipe (every stage config must exist).

    Raises:
        SamSrError: a missing file, invalid YAML, unknown keys, no stages, a missing stage config.
    """
    path = find_recipe(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SamSrError(f"invalid YAML in {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SamSrError(f"recipe {path} must be a mapping with 'stages'")
    unknown = sorted(set(data) - {"stages", "export"})
    if unknown:
        raise SamSrError(f"unknown recipe keys {unknown} in {path} (stages, export)")
    stages = data.get("stages") or []
    if not isinstance(stages, list) or not stages:
        raise SamSrError(f"recipe {path} has no stages")
    paths = [path.parent / str(s) for s in stages]
    for p in paths:
        if not p.is_file():
            raise SamSrError(f"recipe {path}: stage config not found: {p}")
    export = data.get("export")
    if export is not None:
        if not isinstance(export, dict) or set(export) - {"from", "to", "inference", "boundary_from", "decision"} \
                or not {"from", "to"} <= set(export):
            raise SamSrError(f"recipe {path}: export needs 'from' and 'to' (and optional 'inference', or "
                             f"'boundary_from' and/or 'decision')")
    return Recipe(path, paths, export)


def _finished(cfg: dict[str, Any]) -> bool:
    """Whether a stage's ``final.pt`` exists at the stage's end iteration."""
    from .state import end_iteration
    final = Path(cfg["train"]["out_dir"]) / "final.pt"
    if not final.is_file():
        return False
    try:
        return int(read_checkpoint(final).get("iteration") or -1) == end_iteration(cfg["train"])
    except SamSrError:
        return False


def run_recipe(recipe: Recipe, overrides: list[str] | None = None,
               train_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
               log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every stage of ``recipe`` in order (finished ones are skipped), then its export.

    Args:
        overrides: ``key=value`` overrides applied to every stage's config.
        train_fn: the trainer (default :func:`sam_sr.training.train`).

    Returns:
        One ``{"stage", "config", "status": "trained" | "skipped", ...}`` per stage, plus
        ``{"export": path}`` when the recipe exports.

    Raises:
        SamSrError: from the configs, training or the export.
    """
    if train_fn is None:
        from . import train as train_fn
    # load every stage first: a bad config or override fails before hours of training
    configs = [load_config(p, overrides) for p in recipe.stages]
    report = []
    for i, (path, cfg) in enumerate(zip(recipe.stages, configs), 1):
        name = f"stage {i}/{len(configs)} ({path.name})"
        if _finished(cfg):
            log(f"{name}: finished earlier ({cfg['train']['out_dir']}/final.pt), skipped")
            report.append({"stage": i, "config": str(path), "status": "skipped"})
            continue
        log(f"{name}: training into {cfg['train']['out_dir']}")
        result = train_fn(cfg)
        report.append({"stage": i, "config": str(path), "status": "trained", **result})
    if recipe.export:
        e = recipe.export
        dst = Path(e["to"])
        if dst.exists():
            log(f"export: {dst} exists, left as it is")
        else:
            if "boundary_from" in e or "decision" in e:
                from ..checkpoint import replace_boundary
                src = Path(e["from"])
                if "inference" in e:
                    # the settings first, into a scratch file of ours beside the destination (one
                    # that a killed run left behind is replaced; the user's files are never touched)
                    src = dst.with_name(f".{dst.name}.settings.pt")
                    export_checkpoint(e["from"], src, e["inference"] or {}, force=True)
                try:
                    replace_boundary(src, e.get("boundary_from"), dst, decision=dict(e.get("decision") or {}))
                finally:
                    if "inference" in e:
                        src.unlink(missing_ok=True)
            else:
                export_checkpoint(e["from"], dst, e.get("inference") or {})
            log(f"export: wrote {dst}")
        report.append({"export": str(dst)})
    return report
