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
    monkeypatch.setattr(heap, "_TRIM", None)
    assert heap.trim_heap() is False
