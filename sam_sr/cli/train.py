"""``sam-sr train``: one training config, or a whole recipe (every stage in order)."""
from __future__ import annotations

import argparse

HELP = "train a refiner from a config, or a whole recipe (e.g. the shipped model's)"
DESCRIPTION = """Train a sam-sr refiner with accelerate (mixed precision and multi-GPU through
`accelerate launch`). --config CFG trains one config; --recipe NAME runs every stage of
configs/recipes/NAME.yaml (or a recipe file) in order, skipping finished stages and resuming an
unfinished one where it stopped. Dotted key=value overrides (YAML values) apply to the config, or to
every stage of a recipe; unknown keys are errors. Configs read data through ${data:...}: set
SAM_SR_DATA to the data folder (the one holding sod/, horse/, ...)."""


def arguments(ap: argparse.ArgumentParser) -> None:
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="YAML config, e.g. configs/crm_r18/crm_r18.yaml")
    what.add_argument("--recipe", help="recipe name in configs/recipes/ (e.g. crm_r18) or a recipe file")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.iterations=100")


def run(args) -> int:
    if args.recipe:
        from ..training.recipe import load_recipe, run_recipe
        report = run_recipe(load_recipe(args.recipe), args.overrides)
        trained = sum(r.get("status") == "trained" for r in report)
        skipped = sum(r.get("status") == "skipped" for r in report)
        print(f"recipe done: {trained} stage(s) trained, {skipped} finished earlier"
              + "".join(f"; exported {r['export']}" for r in report if "export" in r))
        return 0
    from ..config import load_config
    from ..training import train
    cfg = load_config(args.config, args.overrides)
    result = train(cfg)
    if result.get("start") == result["iteration"]:
        print(f"already finished: {cfg['train']['out_dir']} is at iteration {result['iteration']}, its last; "
              f"nothing to train (checkpoint {result['final_checkpoint']})")
        return 0
    if "thresholds" in result:                       # a decision stage: trees, not a loss curve
        print(f"done: {result['iteration']} trees per head, cross-validated AUC {result['cv_auc']}, thresholds "
              f"{result['thresholds']}, {result['wall_s']:.0f} s, checkpoint {result['final_checkpoint']}")
        return 0
    print(f"done: {result['iteration']} iterations, loss {result['first_loss']:.4f} -> "
          f"{result['last_loss']:.4f}, {result['wall_s']:.0f} s, checkpoint {result['final_checkpoint']}")
    return 0
