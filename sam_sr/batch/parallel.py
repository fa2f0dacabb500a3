"""Data-parallel folder, label-map and COCO runs: one process per GPU (or CPU worker).

Launch the same command once per process, e.g. ``accelerate launch --multi_gpu --num_processes 8
...`` on a GPU machine, or ``torchrun --nproc_per_node 4 ...`` (also ``accelerate launch --multi_gpu
--num_processes 4``) on a CPU-only machine: with no CUDA device the processes join over gloo on the
CPU (accelerate's own ``--cpu`` flag starts a single process unless it is given an MPI host file).
A plain ``python ...`` run is one process and behaves exactly the same.

:func:`run_sharded` gives each process a contiguous share of the run's jobs (accelerate's
``PartialState.split_between_processes``); each process refines its share and writes its own outputs
(mask files; all processes must see the same file system). Each process then writes its summary to
a part file next to the run's summary, all wait (``wait_for_everyone``), and the main process merges
the parts into one summary (and, for COCO runs, the caller writes one merged results file), and
deletes the parts. A process that hits an unexpected error still reaches the barrier, so the others
are not left waiting; the error is raised after the merge.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import SamSrError
from ..imaging.write import atomic_write_bytes

#: How long processes wait for each other at the end of a run (shards of a long run can finish far apart).
BARRIER_TIMEOUT = timedelta(hours=48)


def process_state(cpu: bool | None = None):
    """This process's ``accelerate.PartialState`` (created once per process).

    Args:
        cpu: join over the CPU (gloo) even with GPUs; default: when CUDA is not available.
    """
    from accelerate import PartialState
    if cpu is None:
        cpu = not torch.cuda.is_available()
    return PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)


def process_device(state=None) -> torch.device:
    """The device this process should refine on: its own GPU (``cuda:<local rank>``) in a multi-GPU
    run, else CUDA when available, else the CPU."""
    state = state or process_state()
    dev = torch.device(state.device)
    if dev.type == "cpu" and dev.index is not None:
        return torch.device("cpu")
    return dev


def _broadcast_token(state) -> str:
    token = [uuid.uuid4().hex if state.is_main_process else None]
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list
        broadcast_object_list(token, from_process=0)
    return token[0]


def run_sharded(jobs: Sequence[Any], work: Callable[[list, str], dict[str, Any]],
                summary_path: str | os.PathLike | None = None,
                merge: Callable[[Sequence[dict[str, Any]]], dict[str, Any]] | None = None,
                state=None, scratch_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """Run ``work`` on this process's share of ``jobs`` and merge the shares' summaries.

    Args:
        jobs: the run's JSON-able jobs, the same list in every process (e.g. from
            :func:`sam_sr.batch.folders.plan_mask_folder` or :func:`sam_sr.batch.coco.plan_coco`).
        work: ``work(my_jobs, desc) -> summary`` (e.g. ``lambda js, d: run_mask_jobs(refiner, js,
            desc=d)``); ``desc`` labels this process's progress bar.
        summary_path: where the main process writes the merged summary (JSON); part files go next
            to it. None: no summary file is kept (with more than one process, the part files then go
            to ``scratch_dir``, e.g. the run's output folder, and are removed after the merge).
        merge: joins the summaries (default :func:`sam_sr.batch.folders.merge_summaries`; COCO:
            :func:`sam_sr.batch.coco.merge_coco_summaries`).

    Returns:
        The merged summary in the main process, None in the others.

    Raises:
        SamSrError: several processes without ``summary_path`` or ``scratch_dir``; an error in any
            process's ``work``
            (in the main process, naming the process; in that process, its own).
    """
    from .folders import merge_summaries
    merge = merge or merge_summaries
    state = state or process_state()
    n, rank = state.num_processes, state.process_index
    keep = summary_path is not None
    if n > 1 and summary_path is None:
        if scratch_dir is None:
            raise SamSrError("a run over several processes needs a summary path or a scratch folder "
                             "(for the part files)")
        summary_path = Path(scratch_dir) / ".sam-sr-summary.json"
    desc = f"refine [{rank + 1}/{n}]" if n > 1 else "refine"
    fatal = None
    with state.split_between_processes(list(jobs)) as mine:
        try:
            part = work(list(mine), desc)
        except Exception as exc:  # noqa: BLE001 - reach the barrier anyway, raise after the merge
            if n == 1:
                raise
            fatal = str(exc) if isinstance(exc, SamSrError) else f"{type(exc).__name__}: {exc}"
            part = {"fatal": fatal}
    if n == 1:
        if summary_path is not None:
            atomic_write_bytes(summary_path, (json.dumps(part, indent=1) + "\n").encode())
        return part
    token = _broadcast_token(state)
    sp = Path(summary_path)
    part_path = sp.with_name(f".{sp.name}.{token}.part{rank}-of-{n}.json")
    atomic_write_bytes(part_path, json.dumps(part).encode())
    state.wait_for_everyone()
    merged = None
    if state.is_main_process:
        paths = [sp.with_name(f".{sp.name}.{token}.part{r}-of-{n}.json") for r in range(n)]
        parts = []
        for r, p in enumerate(paths):
            try:
                parts.append(json.loads(p.read_text()))
            except (OSError, ValueError) as exc:
                raise SamSrError(f"process {r} left no readable summary ({p}): {exc}") from exc
        for p in paths:
            p.unlink(missing_ok=True)
        errors = [f"process {r}: {p['fatal']}" for r, p in enumerate(parts) if "fatal" in p]
        if errors:
            raise SamSrError("; ".join(errors))
        merged = merge(parts)
        if keep:
            atomic_write_bytes(sp, (json.dumps(merged, indent=1) + "\n").encode())
    if fatal is not None:
        raise SamSrError(fatal)
    return merged
