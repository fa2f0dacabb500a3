"""Which decode modes a checkpoint was trained for, and the check that refuses the others.

A model trained only on query points near the coarse contour (the shipped model: ``point_band``
training) gives garbage where it was never trained: with ``full`` decoding the shipped model marks
80% of the bundled example as foreground, against 51% with its ``contour`` mode. So a checkpoint
records the decode modes that are valid for it, as mode names (``full``, ``bbox``, ``contour``,
``strided``, ``hierarchical``; the parameter, e.g. the band width of ``contour:W``, is free):

1. ``config["inference"]["valid_decode"]`` in the checkpoint, a list of names (written by training
   from the config's ``inference`` section, and by ``sam-sr export --valid-decode``);
2. else, when the checkpoint recommends a decode mode (``config["inference"]["decode"]``), that
   mode only: the one mode known to work with it (e.g. a SAM-SR v4 checkpoint, whose boundary
   refiner is the shipped CRM and whose settings say ``contour``);
3. else every mode.

Any other mode is refused with :class:`~sam_sr.errors.SamSrError` naming the valid ones, unless the
caller allows it explicitly (``allow_any_decode=True``, ``--allow-any-decode``), which logs a warning.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from ..errors import SamSrError
from .decode_mode import DecodeMode

#: The decode mode names.
MODES: tuple[str, ...] = tuple(DecodeMode.DEFAULTS)
#: The key of a checkpoint config's ``inference`` section that lists the valid modes.
KEY = "valid_decode"

log = logging.getLogger("sam_sr")


def parse_modes(value: Any, where: str = "valid_decode") -> list[str]:
    """Mode names from a list (or a comma-separated string) of names; a name with a parameter
    (``contour:2``) counts as its name.

    Raises:
        SamSrError: an empty list, an unknown name, a value of another type (naming ``where``).
    """
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise SamSrError(f"{where} must be a non-empty list of decode mode names from {list(MODES)}, "
                         f"got {value!r}")
    names = []
    for v in value:
        try:
            name = DecodeMode.parse(v).name
        except SamSrError:
            raise SamSrError(f"{where}: unknown decode mode {v!r}; choose from {list(MODES)}") from None
        if name not in names:
            names.append(name)
    return names


def valid_modes(state: dict[str, Any]) -> list[str] | None:
    """The decode modes a checkpoint dict is valid for (see the module docstring), or None for all.

    Raises:
        SamSrError: a malformed ``valid_decode`` entry.
    """
    inference = (state.get("config") or {}).get("inference") or {}
    if inference.get(KEY) is not None:
        return parse_modes(inference[KEY], f"the checkpoint's inference.{KEY}")
    if inference.get("decode") is not None:
        return [DecodeMode.parse(inference["decode"]).name]
    return None


def check_decode(decode: str | DecodeMode, valid: Iterable[str] | None, checkpoint: str = "the model",
                 allow: bool = False) -> None:
    """Refuse (or, with ``allow``, warn about) a decode mode the checkpoint was not trained for.

    Raises:
        SamSrError: ``decode``'s mode is not in ``valid`` and not ``allow``; the message names the
            valid modes and how to run it anyway.
    """
    if valid is None:
        return
    valid = list(valid)
    mode = decode if isinstance(decode, DecodeMode) else DecodeMode.parse(decode)
    if mode.name in valid:
        return
    text = (f"decode mode {str(mode)!r} is not one {checkpoint} was trained for (valid: "
            f"{', '.join(valid)}); its output there is unreliable")
    if not allow:
        raise SamSrError(f"{text}. Choose --decode {valid[0]}[:N], or pass --allow-any-decode "
                         f"(allow_any_decode=True) to run it anyway")
    log.warning("warning: %s (running it because --allow-any-decode was given)", text)
