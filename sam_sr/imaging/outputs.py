"""A run's output paths, checked before it reads or refines anything.

:func:`check_outputs` and :func:`folder_outputs` refuse an output that is an input (never
overwritten, not even with ``--force``), two outputs that are one file, two inputs that share a stem,
an existing output without ``--force``, and a folder that is a file or cannot be written.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import SamSrError
from .write import mask_format


def _writable_folder(p: Path) -> None:
    """Raise :class:`SamSrError` if ``p``'s folder cannot be created or written (checked on the
    nearest existing ancestor)."""
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SamSrError(f"cannot write {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SamSrError(f"cannot write {p}: folder {parent} is not writable")



def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """Check one output path before a run writes it.

    Raises:
        SamSrError: ``path`` exists and not ``force``; it is a folder; its folder is a file or is
            not writable.
    """
    p = Path(path)
    if p.is_dir():
        raise SamSrError(f"output path is a directory: {p}")
    if p.exists() and not force:
        raise SamSrError(f"output exists: {p} (use --force to overwrite)")
    _writable_folder(p)
    return p



def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check a folder a run writes into (created when missing) before the run starts.

    Raises:
        SamSrError naming ``what`` (e.g. ``train.out_dir``): ``path`` is a file, a parent of it is a
            file, or the folder (or its nearest existing parent) is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise SamSrError(f"{what} {p} is a file; it must be a folder (it is created if missing)")
    try:
        _writable_folder(p / "x")
    except SamSrError as exc:
        raise SamSrError(f"{what}: {exc}") from None
    return p



def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()



def _named(paths) -> dict[str, Path]:
    if paths is None:
        return {}
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    items = paths.items() if isinstance(paths, Mapping) else ((None, q) for q in paths)
    return {(name or str(q)): Path(q) for name, q in items if q is not None}



def check_outputs(inputs: Mapping[str, str | os.PathLike | None] | Iterable[str | os.PathLike],
                  outputs: Mapping[str, str | os.PathLike | None] | Iterable[str | os.PathLike],
                  force: bool = False, images: Iterable[str] = ()) -> dict[str, Path]:
    """Check a run's output paths before anything is read or refined.

    Args:
        inputs: the run's input files, as ``{name: path}`` (e.g. ``{"--image": ..., "--mask": ...}``;
            names appear in errors) or a list of paths; ``None`` values are skipped.
        outputs: the run's output files, likewise (e.g. ``{"--out": ..., "--overlay": ...}``).
        force: allow overwriting existing outputs (never an input).
        images: names of ``outputs`` written as images: their extension must be a lossless mask
            format (:func:`mask_format`).

    Returns:
        ``{name: Path}`` of the outputs.

    Raises:
        SamSrError naming the argument and path: an output is the same file as an input (even with
        ``force``; symbolic and hard links count), two outputs are the same file, an output exists
        (without ``force``) or is a folder, its folder is a file or not writable, an image output
        with a lossy or unknown extension.
    """
    ins, outs = _named(inputs), _named(outputs)
    for oname, o in outs.items():
        for iname, i in ins.items():
            if _same_file(o, i):
                raise SamSrError(f"{oname} {o} is the input {iname}; an input is never overwritten "
                                 f"(not even with --force): choose another output path")
    names = list(outs)
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            if _same_file(outs[a], outs[b]):
                raise SamSrError(f"{a} and {b} are the same file {outs[a]}; give them different paths")
    for name in images:
        if name in outs:
            if outs[name].is_dir():
                raise SamSrError(f"{name} {outs[name]} is a folder: give a file name ending in .png or .tif "
                                 f"(a folder of outputs is for folder runs: --images)")
            mask_format(outs[name])
    for name, o in outs.items():
        check_output_path(o, force)
    return outs



def folder_outputs(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   suffix: str = ".png", protected: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Output paths ``out_dir/<input stem><suffix>`` of a folder run, checked before it starts.

    Existing outputs are not checked here (a folder run reports each as a failed item unless
    forced); see :func:`check_output_path`.

    Args:
        inputs: the run's input files (e.g. the photos); their stems name the outputs.
        out_dir: output folder (created when written).
        suffix: output extension, ``.png`` or ``.tif`` (:func:`mask_format`).
        protected: more input files (e.g. the coarse masks) that no output may be.

    Returns:
        One output path per input, in order.

    Raises:
        SamSrError: two inputs with the same stem (naming both: they would write one file), an
            output that is an input or a protected file, ``out_dir`` is a file, a lossy or unknown
            ``suffix``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SamSrError(f"output folder {out} is a file")
    mask_format(f"x{suffix}")
    seen: dict[str, Path] = {}
    paths = []
    for src in map(Path, inputs):
        key = src.stem.lower() if os.path.normcase("A") == "a" else src.stem
        if key in seen:
            raise SamSrError(f"{seen[key]} and {src} have the same stem: both would be written to "
                             f"{out / (src.stem + suffix)}; rename one")
        seen[key] = src
        paths.append(out / f"{src.stem}{suffix}")
    taken = [Path(p) for p in inputs] + [Path(p) for p in protected]
    if out.is_dir():
        existing = {p.resolve() for p in taken if p.exists()}
        for p in paths:
            if p.exists() and p.resolve() in existing:
                raise SamSrError(f"output {p} would overwrite an input of this run; choose another "
                                 f"output folder")
    else:
        _writable_folder(out / "x")
    return paths

