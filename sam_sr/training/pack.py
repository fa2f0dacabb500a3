"""Pack one training config for another machine: the files its datasets read, its starting weights,
and a resolved config that points at them, in one folder.

Why: a lent GPU machine receives only the repository (a copy of the working tree, at most 64 MiB
with what is carried beside it) and can reach no data host, so a training run there needs its photos
carried in. :func:`pack_training` copies exactly what the config's ``data.datasets`` read (each
dataset's images, masks and coarse masks; the ``ids_file`` subset only), the ``train.init_checkpoint``
file, and writes ``train.yaml``: the config with every ``${data:...}`` resolved, each dataset
rewritten as a ``generic`` folder of the pack, and the starting weights read from the pack. On the
other machine ``python -m sam_sr train --config PACK/train.yaml`` then trains without ``SAM_SR_DATA``.
Files are copied byte for byte (no re-encoding): the run sees the same photos as one here.

The pack is written to a temporary folder beside ``out`` and renamed at the end, so an interrupted or
refused pack leaves nothing, and an existing ``out`` is never overwritten.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..errors import SamSrError

#: Name of the resolved config inside a pack.
CONFIG_NAME = "train.yaml"
#: Name of the copied starting weights inside a pack.
INIT_NAME = "init.pt"


def _copy(src: Path, dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst.stat().st_size


def pack_training(cfg: dict[str, Any], out: str | Path, max_mib: float = 48.0, name: str = "") -> dict[str, Any]:
    """Copy what the training config ``cfg`` reads into the new folder ``out`` (see the module docstring).

    Args:
        cfg: a loaded config (:func:`sam_sr.config.load_config`: plain containers, ``${data:...}``
            resolved) with ``data.datasets`` and optionally ``train.init_checkpoint``.
        out: the pack's folder, which must not exist yet. Paths inside ``train.yaml`` are written as
            ``out`` is given (relative stays relative: run the training from the same folder, the
            repository's root).
        max_mib: refuse a pack larger than this many MiB (2**20 bytes), before it is renamed into place.
        name: the run's ``train.out_dir`` becomes ``runs/<name>`` (default: the config's own out_dir).

    Returns:
        The manifest also written to ``out/manifest.json``: ``datasets`` (per dataset: ``root``
        packed from, ``samples``, ``bytes``), ``init_checkpoint``, ``bytes`` (total), ``config``.

    Raises:
        SamSrError: ``out`` exists; a dataset spec that cannot be read (missing folder, no samples);
            the starting weights missing; the pack over ``max_mib``.
    """
    from ..data.datasets import load_samples

    out = Path(out)
    if out.exists():
        raise SamSrError(f"{out} already exists; pack into a new folder (nothing was written)")
    specs = list((cfg.get("data") or {}).get("datasets") or [])
    if not specs:
        raise SamSrError("the config has no data.datasets to pack")
    init = (cfg.get("train") or {}).get("init_checkpoint")
    if init and not Path(init).is_file():
        raise SamSrError(f"train.init_checkpoint {init} not found; train or fetch it before packing")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        total, manifest, packed = 0, {"datasets": []}, []
        for k, spec in enumerate(specs):
            samples = load_samples(spec)
            root = tmp / "data" / f"d{k}"
            nbytes = 0
            for s in samples:
                stem = s.id.replace("/", "__")
                nbytes += _copy(s.image, root / "images" / f"{stem}{s.image.suffix.lower()}")
                nbytes += _copy(s.mask, root / "masks" / f"{stem}.png")
                for src, path in s.coarse.items():
                    nbytes += _copy(path, root / "coarse" / src / f"{stem}.png")
            total += nbytes
            packed.append({"layout": "generic", "root": str(out / "data" / f"d{k}")})
            manifest["datasets"].append({"root": str(spec.get("root")), "layout": spec.get("layout", "generic"),
                                         "ids_file": spec.get("ids_file"), "samples": len(samples),
                                         "bytes": nbytes})
        new = json.loads(json.dumps(cfg))
        new["data"]["datasets"] = packed
        if init:
            total += _copy(Path(init), tmp / INIT_NAME)
            new["train"]["init_checkpoint"] = str(out / INIT_NAME)
        if name:
            new["train"]["out_dir"] = f"runs/{name}"
        (tmp / CONFIG_NAME).write_text(
            "# Written by sam_sr.training.pack: the config below, resolved, with its data read from this pack.\n"
            + yaml.safe_dump(new, sort_keys=False))
        manifest.update({"init_checkpoint": init, "bytes": total, "config": new})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if total > max_mib * 2 ** 20:
            raise SamSrError(f"the pack would hold {total / 2 ** 20:.1f} MiB, over the {max_mib:g} MiB allowed; "
                             f"pack fewer photos (an ids_file per dataset) or allow more (nothing was written)")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
