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
