"""benchmarks/memory_stages.py books the process's memory to the stages of one refinement: on the
bundled example, in a fresh process, every stage the default runs is there, in a plausible order, and
the process's peak is the largest of them (within the sampling's 5 ms)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="needs Linux's /proc")
def test_memory_stages_on_the_bundled_example(tmp_path):
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory_stages.py"),
                        "--image", str(ROOT / "sam_sr/assets/coffee.jpg"),
                        "--mask", str(ROOT / "sam_sr/assets/coffee_coarse.png"), "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    stages = res["stages_mib"]
    assert {"imports", "model loaded", "SAM and region network", "decision features", "cascade"} <= set(stages)
    assert stages["imports"] <= stages["model loaded"] <= stages["SAM and region network"]
    assert max(stages.values()) <= res["maxrss_mib"] + 1
    assert "| cascade |" in r.stdout
