"""Option types for argparse (``type=``): each checks a value when the command line is parsed and
raises :class:`argparse.ArgumentTypeError` naming what is wrong, so a bad value ends in one
``error: argument --NAME: ...`` line and exit status 2 before anything runs.

:class:`Parser` is the ``argparse.ArgumentParser`` every command uses: a usage error is one line.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, NoReturn


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one ``error: ...`` line (exit status 2) that
    points to ``--help``, as every other error of sam-sr's command line is."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):      # e.g. --scales -1,0.5 (taken for an option)
            message += "; write a value that starts with '-' as --option=VALUE"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


#: ``--label-merge`` choices: the names of :data:`sam_sr.inference.labels.LABEL_MERGES`, spelled out here
#: so that ``--help`` loads no torch (the label module's package does); a test keeps them equal
LABEL_MERGE_NAMES = ("thin-aware", "uniform", "argmax")

#: ``--coarse-input`` choices of ``compare`` and ``eval``: :data:`sam_sr.evaluation.evaluate.COARSE_INPUTS`,
#: spelled out here for the same reason; a test keeps them equal
COARSE_INPUT_NAMES = ("binary", "soft")


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(low: int, note: str = "") -> Callable[[str], int]:
    """An integer >= ``low`` (``note``, e.g. ``"0 = off"``, is added to the error)."""
    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}{f' ({note})' if note else ''}, "
                                             f"got {text!r}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


#: Common integer options.
positive_int = int_at_least(1)
count = int_at_least(0)


def float_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A finite number in the interval from ``low`` to ``high`` (open ends as given)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        value = _float(text)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text!r}")
        return value
    parse.__name__ = f"number in {interval}"
    return parse


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _comma_list(text: str, convert: Callable[[str], Any], ok: Callable[[Any], bool], want: str) -> list:
    """Comma-separated values converted by ``convert`` (raising ValueError) and checked by ``ok``;
    empty parts are skipped. The error says ``want`` and names the bad part."""
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            value = convert(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {want}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"each value must be {want}, got {part!r} in {text!r}")
        out.append(value)
    return out


def scales(text: str) -> tuple[float, ...]:
    """Comma-separated cascade scales, each a fraction of full size in (0, 1] (e.g.
    ``0.125,0.25,0.5,1``). NaN, infinities, 0, negatives and values above 1 are refused."""
    out = _comma_list(text, float, lambda v: math.isfinite(v) and 0 < v <= 1, "fractions of full size in (0, 1]")
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions in (0, 1], got {text!r}")
    return tuple(out)


def int_list(text: str) -> list[int]:
    """Comma-separated positive integers (e.g. image sizes ``2048,3840``); ``''`` is the empty list."""
    return _comma_list(text, int, lambda v: v >= 1, "integers >= 1")


def device(text: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:N`` (N below the number of CUDA
    devices), ``mps``. Unknown names and absent devices are refused
    (:func:`sam_sr.devices.check_device`)."""
    from ..devices import check_device
    from ..errors import SamSrError
    try:
        return str(check_device(text))
    except SamSrError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("device").lstrip(": ")) from None


def decode_mode(text: str):
    """A decode mode: ``full``, ``bbox[:P]``, ``contour[:W]``, ``strided:N``, ``hierarchical[:N]``,
    parsed once into a :class:`sam_sr.inference.decode_mode.DecodeMode`."""
    from ..errors import SamSrError
    from ..inference.decode_mode import DecodeMode
    try:
        return DecodeMode.parse(text)
    except SamSrError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tile_px(field: str, doc: str) -> Callable[[str], int]:
    """A parser of a :class:`~sam_sr.inference.cascade.CascadeConfig` tile field in pixels, checked by
    the config itself (its message names "the tile")."""
    def parse(text: str) -> int:
        from ..errors import SamSrError
        from ..inference.cascade import CascadeConfig
        value = count(text)
        try:
            CascadeConfig(**{field: value})
        except SamSrError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(f"CascadeConfig.{field}", "the tile")) from None
        return value
    parse.__name__, parse.__doc__ = field, doc
    return parse


encoder_tile = _tile_px("encoder_tile", "Encoder tile size in pixels: 0 (off) or larger than twice the "
                                        "tiles' context.")
sparse_tile = _tile_px("sparse_tile", "Sparse-step tile side in pixels: 0 (off) or a positive multiple of 8.")


def key_number(text: str) -> tuple[str, float]:
    """``KEY=NUMBER`` (e.g. ``opens=1.01``) -> ``(key, number)``."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER, got {text!r}")
    return key.strip(), _float(value)
