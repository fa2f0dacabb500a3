"""sam_sr.cli.import_torch: a Ctrl-C while torch loads is held until the import ends, then raised."""
import signal
import subprocess
import sys
import textwrap

from tests.battery import ROOT

# A fresh interpreter in which a SIGINT arrives in the middle of the import (when torchvision's
# import starts: torch is loaded, torchvision is not). Prints where the KeyboardInterrupt was raised.
SCRIPT = textwrap.dedent("""
    import os, signal, sys

    class SignalOnTorchvision:
        def find_spec(self, name, path=None, target=None):
            if name == "torchvision":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, SignalOnTorchvision())
    from sam_sr.cli import import_torch
    try:
        {call}
    except KeyboardInterrupt:
        print("KeyboardInterrupt", "torchvision" in sys.modules)
    else:
        print("no KeyboardInterrupt", "torchvision" in sys.modules)
""")


def _run(call: str) -> str:
    # SIGINT at its default in the child even when this run inherited it ignored (a background job of
    # a non-interactive shell): Python then installs its KeyboardInterrupt handler
    p = subprocess.run([sys.executable, "-c", SCRIPT.format(call=call)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip()


def test_a_ctrl_c_during_the_import_is_raised_after_it():
    # without the guard the KeyboardInterrupt lands inside torchvision's import
    assert _run("import torch, torchvision") == "KeyboardInterrupt False"
    # with it, torch and torchvision finish loading, then the Ctrl-C is raised
    assert _run("import_torch()") == "KeyboardInterrupt True"


def test_commands_that_use_torch_load_it_first():
    from sam_sr.cli import COMMANDS, build_parser

    assert [name for name, cmd in COMMANDS.items() if not cmd.torch] == ["boundary-alignment"]
    args = build_parser().parse_args(["infer", "--example", "--out", "x.png"])
    assert args.needs_torch is True
