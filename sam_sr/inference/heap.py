"""The process's heap: freed memory returned to the OS between the large stages of a refinement, and
glibc's allocator tuned so that large activations stop churning the kernel.

glibc's allocator keeps freed heap memory in the process (for reuse) unless it lies at the top of
the heap; after a stage that allocated and freed hundreds of MB (SAM's stage at full resolution, a
cascade step's features) the freed pages stay resident and add to the next stage's peak RSS.
:func:`trim_heap` asks glibc to release them (``malloc_trim(0)``, which also returns whole free pages
inside the heap with ``madvise``; glibc >= 2.8). Outputs are unchanged: only where the next
allocations' pages come from differs. Elsewhere (macOS, Windows, musl) it does nothing.

:func:`tune_allocator` (run once per process when a :class:`~sam_sr.inference.predictor.Refiner` is
made) raises glibc's mmap threshold to its 32 MiB ceiling, with a high trim threshold and top pad.
Why: by default glibc serves every allocation above its (adaptive, at first 128 KiB) threshold with a
fresh ``mmap`` and returns it with ``munmap`` when freed, so each of MobileSAM's encoder activations
(tens of MB, freed and allocated again layer after layer) is faulted in page by page anew: measured
2026-12-03 on this 2-core CPU, ``SamPredictor.set_image`` alone made about 500,000 minor page faults
and spent 1.2-1.6 s in the kernel per photo, a quarter of a folder run's CPU time. With the threshold
at 32 MiB those blocks are reused from the heap (faults 500k -> 143k, kernel time 1.24 -> 0.50 s,
wall 1.73 -> 1.39 s for ``set_image``); :func:`trim_heap` still returns them between stages, so the
peak stays where it was. Setting ``SAM_SR_TUNE_MALLOC=0`` leaves glibc's defaults (for comparisons).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_LIBC = None
_LOADED = False
_TUNED: bool | None = None

#: glibc's mallopt parameters (malloc.h) and the values :func:`tune_allocator` sets.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20        # bytes: glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 256 << 20       # bytes kept at the top of the heap before free() trims by itself
TOP_PAD = 64 << 20               # bytes the heap grows by at once


def _libc():
    """glibc, where this is Linux with glibc (``malloc_trim`` and ``mallopt`` found), else None."""
    global _LIBC, _LOADED
    if not _LOADED:
        _LOADED = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
                    _LIBC = libc
            except OSError:
                _LIBC = None
    return _LIBC


def _malloc_trim():
    libc = _libc()
    return None if libc is None else libc.malloc_trim


def tune_allocator() -> bool:
    """Set glibc's mmap threshold to 32 MiB, its trim threshold to 256 MiB and its top pad to 64 MiB
    for this process (see the module docstring for the measured reason); once per process.

    Returns:
        True where the settings were made (Linux with glibc, ``SAM_SR_TUNE_MALLOC`` not ``0``).
    """
    global _TUNED
    if _TUNED is None:
        libc = _libc()
        _TUNED = False
        if libc is not None and os.environ.get("SAM_SR_TUNE_MALLOC", "1") != "0":
            _TUNED = all(libc.mallopt(k, v) == 1 for k, v in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                              (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                                              (M_TOP_PAD, TOP_PAD)))
    return _TUNED


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


__all__ = ["trim_heap", "tune_allocator"]
