"""What the refiner and region trainers share: the optimizer and its parameter groups, the
learning-rate schedule, fine-tuning initialisation, frozen parameters (``train.trainable``; the
refiner trainer uses it), the iteration a run ends at, and the resumable state.

The state (model, optimizer, LR scheduler, mixed-precision scaler, Python/numpy/torch RNG states;
accelerate's :meth:`~accelerate.Accelerator.save_state`) plus ``progress.json`` (iteration, variant,
model config) is written into a fresh folder and swapped in (:func:`save_state`), so an interruption
leaves the previous state whole; :func:`state_dir_of` puts back a state left half-swapped.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
)

from ..checkpoint import read_checkpoint
from ..errors import SamSrError


def build_schedule(opt: torch.optim.Optimizer, t: dict[str, Any]) -> LRScheduler:
    """The learning-rate schedule, stepped once per iteration, from ``torch.optim.lr_scheduler``:

    - warm-up (``train.warmup`` = W > 0 iterations): :class:`LinearLR` from lr / W to lr, so iteration
      i < W runs at lr * (i + 1) / W;
    - then ``cosine``: :class:`CosineAnnealingLR` from lr to 0 over the remaining ``iterations - W``;
      or ``step``: :class:`MultiStepLR`, lr x ``gamma`` at each ``milestones`` fraction of
      ``iterations`` (CRM: x0.1 at 50% and 83.3%);
    - chained with :class:`SequentialLR` at iteration W.

    Raises:
        SamSrError: an unknown schedule or a negative warm-up.
    """
    total, warm = int(t["iterations"]), int(t["warmup"])
    if warm < 0:
        raise SamSrError(f"train.warmup must be >= 0 iterations, got {warm}")
    if t["schedule"] == "cosine":
        main: LRScheduler = CosineAnnealingLR(opt, T_max=max(1, total - warm))
    elif t["schedule"] == "step":
        steps = sorted({max(1, math.ceil(m * total) - warm) for m in t["milestones"]})
        main = MultiStepLR(opt, milestones=steps, gamma=t["gamma"])
    else:
        raise SamSrError(f"unknown train.schedule {t['schedule']!r} (cosine | step)")
    if warm == 0:
        return main
    warmup = LinearLR(opt, start_factor=1.0 / warm, end_factor=1.0, total_iters=max(1, warm - 1))
    return SequentialLR(opt, [warmup, main], milestones=[warm])



def param_groups(model, t: dict[str, Any]) -> list[dict[str, Any]]:
    """Adam parameter groups: parameters whose name starts with a ``train.lr_mult`` prefix get
    ``lr * multiplier`` (e.g. a new pixel head next to fine-tuned weights); the rest ``lr``.

    Raises:
        SamSrError: a prefix that matches no parameter, or a multiplier that is not a positive number.
    """
    groups: dict[str, list] = {"": []}
    mult = dict(t.get("lr_mult") or {})
    for prefix, m in mult.items():
        if not isinstance(m, (int, float)) or m <= 0:
            raise SamSrError(f"train.lr_mult[{prefix!r}] must be a positive number, got {m!r}")
        groups[prefix] = []
    for name, p in model.named_parameters():
        hit = next((pre for pre in mult if name.startswith(pre)), "")
        groups[hit].append(p)
    empty = [pre for pre in mult if not groups[pre]]
    if empty:
        raise SamSrError(f"train.lr_mult prefixes {empty} match no model parameter")
    return [{"params": ps, "lr": t["lr"] * (mult[pre] if pre else 1.0)}
            for pre, ps in groups.items() if ps]



def freeze_except(model, prefixes) -> None:
    """``train.trainable``: only parameters whose name starts with one of ``prefixes`` train (an empty
    list: all of them). The rest stop taking gradients, and :func:`train_mode` keeps every module
    with no trainable parameter in eval mode, so its batch-norm statistics stay as loaded too.

    Raises:
        SamSrError: a prefix that matches no parameter.
    """
    prefixes = tuple(str(p) for p in (prefixes or ()))
    if not prefixes:
        return
    names = [n for n, _ in model.named_parameters()]
    empty = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if empty:
        raise SamSrError(f"train.trainable prefixes {empty} match no model parameter")
    for name, p in model.named_parameters():
        if not name.startswith(prefixes):
            p.requires_grad_(False)


def train_mode(model) -> None:
    """``model.train()``, with the modules that hold parameters or buffers but no trainable parameter
    (frozen by :func:`freeze_except`, or frozen by design) left in eval mode."""
    model.train()
    for m in model.modules():
        own = list(m.parameters()) + list(m.buffers())
        if own and not any(p.requires_grad for p in m.parameters()):
            m.eval()


def build_optimizer(model, t: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam (``train.optimizer: adam``; weight decay as an L2 term in the gradient, CRM's setting) or
    AdamW (``adamw``; decoupled weight decay, Loshchilov & Hutter 2019), over :func:`_param_groups`.

    With Adam's coupled L2 term, weights whose loss gradient is zero (e.g. a new head behind a
    zero-initialised output layer) are driven to zero at about ``lr`` per step; AdamW shrinks them by
    only ``lr * weight_decay`` per step.

    Raises:
        SamSrError: an unknown optimizer name.
    """
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    name = str(t.get("optimizer", "adam")).lower()
    if name not in kinds:
        raise SamSrError(f"unknown train.optimizer {name!r}; choose from {sorted(kinds)}")
    return kinds[name](param_groups(model, t), lr=t["lr"], weight_decay=t["weight_decay"])



def init_from(model, path: str) -> None:
    """Initialise from another checkpoint's weights (fine-tuning). Tensors of the same name and shape
    are copied; parameters the checkpoint lacks keep their initialisation (e.g. a new mask skip).

    Raises:
        SamSrError: unreadable checkpoint, or one whose tensors do not fit this model.
    """
    state = read_checkpoint(path)["model"]
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise SamSrError(f"init_checkpoint {path} does not fit this model: e.g. {bad[:3]}")
    missing = model.load_state_dict(state, strict=False).missing_keys
    print(f"initialised from {path}" + (f"; new parameters: {missing}" if missing else ""))



def read_progress(state_dir: Path) -> dict[str, Any] | None:
    p = state_dir / "progress.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SamSrError(f"cannot read {p}: {exc}; delete {state_dir} to start again") from exc



def state_dir_of(acc: Accelerator, out: Path) -> Path:
    """``out/state``, the run's resumable state; a save interrupted between the two renames of
    :func:`_save_state` (only ``state.old`` left) is put back first."""
    state_dir = out / "state"
    old_state = state_dir.with_name(state_dir.name + ".old")
    if acc.is_main_process and old_state.is_dir() and not state_dir.exists():
        old_state.rename(state_dir)
    acc.wait_for_everyone()
    return state_dir



def save_state(acc: Accelerator, state_dir: Path, progress: dict[str, Any]) -> None:
    """accelerate's ``save_state`` into a fresh folder, then swapped in: an interruption leaves the
    previous state whole."""
    tmp = state_dir.with_name(state_dir.name + ".tmp")
    old = state_dir.with_name(state_dir.name + ".old")
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    try:
        acc.save_state(str(tmp))
        if acc.is_main_process:
            (tmp / "progress.json").write_text(json.dumps(progress, indent=1) + "\n")
    except BaseException:                  # Ctrl-C or an error mid-save: leave no partial state behind
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if acc.is_main_process:
        if state_dir.exists():
            state_dir.rename(old)
        tmp.rename(state_dir)
        if old.exists():
            shutil.rmtree(old)
    acc.wait_for_everyone()



def end_iteration(t: dict[str, Any]) -> int:
    """The iteration a run ends at: ``train.stop_at`` when set, else ``train.iterations``.

    Raises:
        SamSrError: ``iterations`` < 1, or ``stop_at`` outside [0, iterations].
    """
    total, stop = int(t["iterations"]), int(t["stop_at"] or 0)
    if total < 1:
        raise SamSrError(f"train.iterations must be >= 1, got {total}")
    if not 0 <= stop <= total:
        raise SamSrError(f"train.stop_at must be in [0, train.iterations={total}], got {stop}")
    return stop or total


def check_progress(progress: dict[str, Any] | None, state_dir: Path, variant: str,
                   model_config: dict[str, Any]) -> None:
    """Refuse to resume from a state of another model (before anything is prepared or loaded).

    Raises:
        SamSrError: ``progress`` (from :func:`read_progress`) names another variant or model config.
    """
    if progress is not None and (progress.get("variant") != variant or progress.get("model_config") != model_config):
        raise SamSrError(f"cannot resume from {state_dir}: it was trained with another model config")


def load_progress(acc: Accelerator, state_dir: Path, progress: dict[str, Any] | None) -> int:
    """Load the saved state into the prepared model, optimizer, scheduler and RNGs
    (:meth:`~accelerate.Accelerator.load_state`); returns the iteration to start at (0 without a
    state)."""
    if progress is None:
        return 0
    try:
        acc.load_state(str(state_dir))
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and pickle raise many types for damaged files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SamSrError(f"cannot resume from {state_dir}: its saved state is damaged ({first[:200]}); delete "
                         f"{state_dir}, or set train.resume=false, to start again") from exc
    start = int(progress["iteration"])
    acc.print(f"resumed from {state_dir} at iteration {start}")
    return start
