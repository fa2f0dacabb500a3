"""The command line: ``sam-sr COMMAND [options]`` (argparse subcommands), and the entry points of the
top-level scripts ``infer.py`` and ``train.py`` (``accelerate launch train.py``), which only call these.

Every command handles errors the same way (here, once): a bad input ends with one ``error: ...``
line on stderr and exit status 2, with nothing written (outputs are written atomically); Ctrl-C ends
with one ``interrupted`` line and status 130, leaving no partial file. Option values are checked when
parsed (:mod:`.types`); a usage error is one ``error:`` line and status 2 too. A folder or COCO run
reports each bad item, goes on with the rest, prints a summary and exits with status 1 if any failed.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Callable

from ..errors import SamSrError
from . import coco, compare, evaluate, infer, sam, tools, train
from .argtypes import Parser


@dataclass(frozen=True)
class Command:
    """A subcommand: its options (``arguments(parser)``), its body (``run(args) -> status``), the
    one-line help and the longer description."""

    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    help: str
    description: str
    torch: bool = True     # the command uses torch: loaded first, with Ctrl-C held (:func:`import_torch`)


COMMANDS: dict[str, Command] = {
    "infer": Command(infer.arguments, infer.run, infer.HELP, infer.DESCRIPTION),
    "coco": Command(coco.arguments, coco.run, coco.HELP, coco.DESCRIPTION),
    "eval": Command(evaluate.arguments, evaluate.run, evaluate.HELP, evaluate.DESCRIPTION),
    "compare": Command(compare.arguments, compare.run, compare.HELP, compare.DESCRIPTION),
    "eval-semantic": Command(evaluate.semantic_arguments, evaluate.semantic_run, evaluate.SEMANTIC_HELP,
                             evaluate.SEMANTIC_DESCRIPTION),
    "train": Command(train.arguments, train.run, train.HELP, train.DESCRIPTION),
    "profile": Command(tools.profile_arguments, tools.profile_run, tools.PROFILE_HELP,
                       tools.PROFILE_DESCRIPTION),
    "precompute-sam": Command(sam.precompute_arguments, sam.precompute_run, sam.PRECOMPUTE_HELP,
                              sam.PRECOMPUTE_DESCRIPTION),
    "ablation": Command(sam.ablation_arguments, sam.ablation_run, sam.ABLATION_HELP,
                        sam.ABLATION_DESCRIPTION),
    "export": Command(tools.export_arguments, tools.export_run, tools.EXPORT_HELP, tools.EXPORT_DESCRIPTION),
    "figure": Command(tools.figure_arguments, tools.figure_run, tools.FIGURE_HELP, tools.FIGURE_DESCRIPTION),
    "boundary-alignment": Command(tools.alignment_arguments, tools.alignment_run, tools.ALIGN_HELP,
                                  tools.ALIGN_DESCRIPTION, torch=False),
}

DESCRIPTION = """sam-sr: refine a coarse mask from any segmenter into a boundary-accurate mask at the
image's full resolution. `sam-sr COMMAND --help` describes a command. Commands that read the bundled
data folders default to $SAM_SR_DATA (the folder holding sod/, horse/, camvid/, ...)."""


def build_parser(prog: str = "sam-sr") -> argparse.ArgumentParser:
    """The ``sam-sr`` parser with one subparser per command."""
    ap = Parser(prog=prog, description=DESCRIPTION)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description)
        cmd.arguments(p)
        p.set_defaults(run=cmd.run, needs_torch=cmd.torch)
    return ap


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:          # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2


def _close_progress_bars() -> None:
    """Close the tqdm bars an error or Ctrl-C left open (e.g. training's), so that the ``error:`` or
    ``interrupted`` line starts a line of its own instead of following a bar."""
    from tqdm import tqdm
    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the message
            pass


class _StderrHandler(logging.Handler):
    """Writes sam-sr's log records (e.g. the ``warning:`` of ``--allow-any-decode``) to the
    ``sys.stderr`` of the moment, as one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must not end the command
            self.handleError(record)


def _warnings_to_stderr() -> None:
    """Make sure the command line's warnings reach stderr, whatever the logging set-up (the
    ``sam_sr`` logger gets one :class:`_StderrHandler`, level WARNING)."""
    log = logging.getLogger("sam_sr")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)          # (a root handler, if any, also gets the record)


def import_torch() -> None:
    """Import torch and torchvision (which timm and mobile_sam import) with Ctrl-C held back until
    both have loaded; a Ctrl-C that came meanwhile then raises ``KeyboardInterrupt``.

    Why: a SIGINT that lands inside ``import torch`` can end the process in torch's own code before
    sam-sr can handle it. Sent at a random moment of ``import torch, timm`` (40 tries on this project's
    CPU, 2026-12-03), it once ended the process with status -6 (a C++ abort: "terminate called ...
    what(): KeyboardInterrupt"), and in a CI run a ``sam-sr infer`` interrupted while torch loaded
    exited with status -2 after printing ``interrupted``. Holding the signal costs the user
    at most the rest of the import (about 3 s) before ``interrupted``. Outside the main thread (where
    Python cannot install signal handlers) the import runs as is.
    """
    if "torchvision" in sys.modules or threading.current_thread() is not threading.main_thread():
        import torch
        import torchvision
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        import torch  # noqa: F401 (imported for its side effect: loaded with Ctrl-C held)
        import torchvision  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if pending:
        raise KeyboardInterrupt


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command with the shared error and Ctrl-C handling (see module docstring); a
    command that uses torch loads it first (:func:`import_torch`)."""
    _warnings_to_stderr()
    try:
        if getattr(args, "needs_torch", True):
            import_torch()
        return int(args.run(args))
    except SamSrError as exc:
        _close_progress_bars()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        _close_progress_bars()
        print("error: not enough memory for this command (free memory, or use smaller inputs or settings)",
              file=sys.stderr)
        return 2


_HELP_FLAGS = frozenset({"-h", "--help"})


def _huge_pages(argv: list[str] | None) -> None:
    """On the real command line (``argv`` None) of a command, not a help request, with
    ``SAM_SR_HUGE_PAGES=1``: re-execute once with glibc's transparent huge pages
    (:func:`sam_sr.inference.heap.reexec_with_huge_pages`; opt-in, as the gain depends on the machine:
    see :func:`sam_sr.inference.heap.huge_pages_env`); returns at once where that does not apply. A
    test's or caller's explicit ``argv`` never re-executes."""
    args = sys.argv[1:]
    if argv is None and args and not (_HELP_FLAGS & set(args)):
        from ..inference.heap import reexec_with_huge_pages
        reexec_with_huge_pages()


def _parse_and_run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; Ctrl-C while the options are
    checked (e.g. ``--device`` loads torch) ends like Ctrl-C in the command. The package itself
    loads torch only on first use, so the start-up before this point takes a fraction of a second."""
    try:
        _huge_pages(argv)
        args = _parse(parser, sys.argv[1:] if argv is None else argv)
        return args if isinstance(args, int) else run_command(args)
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """``sam-sr COMMAND [options]``."""
    try:
        parser = build_parser()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return _parse_and_run(parser, argv)


def command_main(name: str, script: str) -> Callable[[list[str] | None], int]:
    """The entry point of the top-level script ``script`` that runs command ``name``: the same options
    and handling as ``sam-sr NAME``."""
    cmd = COMMANDS[name]

    def entry(argv: list[str] | None = None) -> int:
        parser = Parser(prog=script, description=cmd.description)
        cmd.arguments(parser)
        parser.set_defaults(run=cmd.run, needs_torch=cmd.torch)
        return _parse_and_run(parser, argv)

    entry.__name__ = entry.__qualname__ = f"{name.replace('-', '_')}_main"
    entry.__doc__ = f"``{script}``: {cmd.help} (= ``sam-sr {name}``)."
    return entry


infer_main = command_main("infer", "infer.py")
train_main = command_main("train", "train.py")

__all__ = ["COMMANDS", "main", "build_parser", "import_torch", "run_command", "infer_main", "train_main"]
