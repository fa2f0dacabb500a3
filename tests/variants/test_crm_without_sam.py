"""``--variant crm`` needs neither segment_anything nor mobile_sam (issue 13, item 7): run in a fresh
interpreter where importing either fails, as if the SAM packages were not installed."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

#: Makes ``import segment_anything`` / ``import mobile_sam`` raise ImportError, like a missing package.
BLOCK = """
import importlib.abc, sys
class _NoSam(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('segment_anything', 'mobile_sam'):
            raise ImportError(f'No module named {name!r} (blocked by the test)')
        return None
sys.meta_path.insert(0, _NoSam())
from sam_sr.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(tmp_path, *args):
    return subprocess.run([sys.executable, "-c", BLOCK, "infer", "--example", *args], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_variant_crm_runs_without_the_sam_packages(tmp_path):
    out = tmp_path / "refined.png"
    r = _run(tmp_path, "--variant", "crm", "--out", str(out))
    assert r.returncode == 0, r.stderr
    refined = np.asarray(Image.open(out))
    assert refined.shape == (400, 600) and set(np.unique(refined)) <= {0, 255}


@pytest.mark.slow
def test_a_sam_variant_without_the_sam_packages_is_one_error_line(tmp_path):
    out = tmp_path / "refined.png"
    r = _run(tmp_path, "--variant", "sam-prompt", "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "pip install" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
