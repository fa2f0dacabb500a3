"""Where the data lives: the one environment variable ``SAM_SR_DATA``.

Library code never assumes a data location. Configs name data as ``${data:sod}`` (a path inside the
data folder), and commands whose data options are not given read ``$SAM_SR_DATA`` (e.g.
``sam-sr eval`` uses ``$SAM_SR_DATA/sod``). The data folder holds one folder per dataset (``sod/``,
``horse/``, ``camvid/``, ``ecssd/``, ...; layouts in :mod:`sam_sr.data.datasets`)::

    export SAM_SR_DATA=/path/to/data
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import SamSrError

#: The environment variable naming the data folder.
DATA_ENV = "SAM_SR_DATA"


def data_root() -> Path:
    """The data folder ``$SAM_SR_DATA``.

    Raises:
        SamSrError: the variable is not set.
    """
    root = os.environ.get(DATA_ENV, "").strip()
    if not root:
        raise SamSrError(f"the data folder is not set: export {DATA_ENV}=<folder with sod/, horse/, ...>, "
                         f"or pass the data paths explicitly")
    return Path(root)


def data_path(rel: str | os.PathLike = "") -> Path:
    """``$SAM_SR_DATA/rel`` (see :func:`data_root`)."""
    return data_root() / rel


def portable(path: str | os.PathLike | None) -> str | None:
    """``path`` as a result file should record it: ``$SAM_SR_DATA/rel`` inside the data folder,
    ``sam_sr/rel`` inside the installed package (a shipped checkpoint), else as given. Result files
    written this way name no machine's folders and read the same wherever they are made."""
    if path is None:
        return None
    p = Path(path).resolve()
    roots = [(Path(__file__).resolve().parent, "sam_sr")]
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        roots.insert(0, (Path(env).resolve(), f"${DATA_ENV}"))
    for root, name in roots:
        if p == root or root in p.parents:
            rel = p.relative_to(root).as_posix()
            return name if rel == "." else f"{name}/{rel}"
    return str(path)
