"""trim_heap(): glibc's malloc_trim where it exists, a no-op elsewhere; refinements are unchanged."""
import ctypes.util
import sys

import numpy as np
import pytest

from sam_sr.inference import heap


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
                    reason="glibc's malloc_trim exists on Linux only")
def test_trim_heap_runs_malloc_trim_on_linux():
    big = [np.ones(1 << 20) for _ in range(8)]   # 64 MiB freed below, then trimmed
    del big
    assert heap.trim_heap() is True


def test_trim_heap_is_a_no_op_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(heap, "_LOADED", True)
    monkeypatch.setattr(heap, "_LIBC", None)
    assert heap.trim_heap() is False
    monkeypatch.setattr(heap, "_TUNED", None)
    assert heap.tune_allocator() is False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
                    reason="glibc's mallopt exists on Linux only")
@pytest.mark.parametrize("env,expected", [("1", "True"), ("0", "False")])
def test_the_allocator_is_tuned_once_per_process_unless_switched_off(env, expected):
    """In a fresh process: glibc takes the settings (mallopt returns 1 for each), and
    SAM_SR_TUNE_MALLOC=0 leaves its defaults."""
    import os
    import subprocess
    code = "from sam_sr.inference import heap; print(heap.tune_allocator(), heap.tune_allocator())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "SAM_SR_TUNE_MALLOC": env})
    assert r.returncode == 0 and r.stdout.split() == [expected, expected], r.stderr
