"""Returning freed host memory to the operating system between the large stages of a refinement.

glibc's allocator keeps freed heap memory in the process (for reuse) unless it lies at the top of
the heap; after a stage that allocated and freed hundreds of MB (SAM's stage at full resolution, a
cascade step's features) the freed pages stay resident and add to the next stage's peak RSS.
:func:`trim_heap` asks glibc to release them (``malloc_trim(0)``, which also returns whole free pages
inside the heap with ``madvise``; glibc >= 2.8). Outputs are unchanged: only where the next
allocations' pages come from differs. Elsewhere (macOS, Windows, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_TRIM = None
_LOADED = False


def _malloc_trim():
    global _TRIM, _LOADED
    if not _LOADED:
        _LOADED = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _TRIM = getattr(libc, "malloc_trim", None)
            except OSError:
                _TRIM = None
    return _TRIM


def trim_heap() -> bool:
    """Release freed heap memory to the OS (glibc ``malloc_trim(0)``); takes about a millisecond.

    Returns:
        True where glibc's ``malloc_trim`` ran (Linux with glibc), else False (nothing done).
    """
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


__all__ = ["trim_heap"]
