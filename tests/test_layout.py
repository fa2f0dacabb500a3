"""The package's layout stays the one docs/ARCHITECTURE.md draws: layers that import only downwards,
no import cycles, few flat modules, small modules, no module named like a standard-library one, and
the document's module list equal to the tree."""
import ast
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "sam_sr"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

#: The layers, bottom first: a module may import its own layer and the layers below it. The first
#: part of a module's name below ``sam_sr`` names its layer (``sam_sr`` itself and ``__main__``: top).
LAYERS = [
    {"errors", "paths", "devices", "config", "imaging"},
    {"models"},
    {"data"},
    {"sam"},
    {"variants", "checkpoint"},
    {"inference"},
    {"evaluation"},
    {"batch", "training"},
    {"reporting"},
    {"cli", "__main__", ""},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The sam_sr modules ``path`` imports, anywhere in it (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def layer(name: str) -> int:
    first = name.split(".")[1] if "." in name else ""
    assert first in LEVEL, f"{name}: its layer ({first!r}) is not in the layer list"
    return LEVEL[first]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_run_down_the_layers_only():
    upward = [(a, b) for a, targets in graph().items() for b in targets
              if layer(b) > layer(a) and not b.startswith(a + ".")]   # a package's own submodules
    assert upward == []


def test_at_most_eight_flat_modules_and_none_over_500_lines():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(flat) <= 8, flat
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_no_module_is_named_like_a_standard_library_one():
    names = {p.stem for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
    assert sorted(names & set(sys.stdlib_module_names)) == []


def test_architecture_lists_every_module_and_only_those():
    """docs/ARCHITECTURE.md has a line per module, ``sam_sr/<path>.py``, in its module list."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(sam_sr/[\w/]+\.py)`", section))
    actual = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert sorted(actual - listed) == [] and sorted(listed - actual) == []


@pytest.mark.parametrize("name", ["cli", "inference.decode_mode", "variants", "training", "imaging"])
def test_light_modules_load_no_torch(name):
    """The command line's parser, the decode mode, the variant names, the training entry point and
    the file readers load without torch (the command line's help and argument errors stay fast)."""
    import subprocess
    code = (f"import sys, sam_sr.{name}; from sam_sr.cli import build_parser; build_parser(); "
            "from sam_sr.variants import available_variants; available_variants(); "
            "heavy = [m for m in ('torch', 'timm', 'cv2', 'accelerate', 'mobile_sam', 'segment_anything') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
