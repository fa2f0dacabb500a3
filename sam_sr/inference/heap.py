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

Huge pages: the blocks above the 32 MiB ceiling (MobileSAM's widest activations) are still mapped
anew each time, 4 KiB page by page. glibc (>= 2.35) can ask the kernel for transparent huge pages
(2 MiB) for its heap and mappings (the ``glibc.malloc.hugetlb=1`` tunable), but only from the
environment at process start, so with ``SAM_SR_HUGE_PAGES=1`` the command line re-executes itself
once with it set (:func:`reexec_with_huge_pages`, for the commands that refine or train). Opt-in: the
gain depends on the machine (:func:`huge_pages_env`). Measured 2026-12-03 on one 2-core CPU, 7 sod
photos (481 x 321) in one warm process, per photo: minor faults 437k -> 45k, system time 1.75 ->
0.68 s, wall 4.02 -> 3.06 s; with the trim skipped for small photos as well (:func:`trim_heap`'s
``pixels``): 5k faults, 0.53 s, 2.91 s.
"""
from __future__ import annotations

import ctypes
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
                libc = ctypes.CDLL("libc.so.6")   # glibc's soname (find_library would run ldconfig)
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


#: images with fewer pixels than this (SAM's 1024 x 1024 frame) skip :func:`trim_heap`: their peak is
#: set by SAM's encoder, not by the image, and the next photo reuses the kept pages instead of faulting
#: them in again (measured: see the module docstring)
TRIM_MIN_PIXELS = 1024 * 1024


def trim_heap(pixels: int | None = None) -> bool:
    """Release freed heap memory to the OS (glibc ``malloc_trim(0)``); takes about a millisecond.

    Args:
        pixels: the image's pixel count (H x W); below :data:`TRIM_MIN_PIXELS` nothing is done.
            None: always trim.

    Returns:
        True where glibc's ``malloc_trim`` ran (Linux with glibc), else False (nothing done).
    """
    fn = _malloc_trim()
    if fn is None or (pixels is not None and pixels < TRIM_MIN_PIXELS):
        return False
    fn(0)
    return True


#: the glibc tunable that makes malloc ask for transparent huge pages (glibc >= 2.35)
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
_REEXEC_MARK = "SAM_SR_REEXEC"
#: the environment variable that asks for huge pages (``1``); off by default, see :func:`huge_pages_env`
HUGE_PAGES_SWITCH = "SAM_SR_HUGE_PAGES"


def _glibc_version() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, OSError, ValueError):
        return None


def _thp_mode(path: str = "/sys/kernel/mm/transparent_hugepage/enabled") -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise`` or ``never``), or None."""
    try:
        text = open(path).read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def huge_pages_env(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to re-execute this process with so that glibc uses transparent huge pages, or
    None where that does not apply: not asked for (``SAM_SR_HUGE_PAGES=1``), not Linux with glibc >=
    2.35, the kernel's mode ``never``, ``SAM_SR_TUNE_MALLOC=0``, the tunable already set, or this
    process already re-executed.

    Opt-in, because the gain depends on the machine. Measured 2026-12-03 on two 2-core AMD EPYC
    machines: on one, a folder of 20 sod photos went from 4.52 to 3.69 s per photo (kernel share of
    CPU time 22.7% -> 6.7%); on the other, later the same day, huge pages made the same folder 60.0 s
    instead of 48.3 s and the 3492 x 2328 aeroplane 14-17 s instead of 10.5 s (system time 6-10 s
    instead of 2-2.5 s), against the allocator tuning of :func:`tune_allocator` alone.
    """
    env = dict(os.environ if environ is None else environ)
    tunables = env.get("GLIBC_TUNABLES", "")
    version = _glibc_version()
    if (env.get(HUGE_PAGES_SWITCH) != "1" or not sys.platform.startswith("linux") or version is None
            or version < (2, 35)
            or env.get("SAM_SR_TUNE_MALLOC", "1") == "0" or env.get(_REEXEC_MARK)
            or "glibc.malloc.hugetlb" in tunables or _thp_mode() not in ("always", "madvise")):
        return None
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE
    env[_REEXEC_MARK] = "1"
    return env


def reexec_with_huge_pages() -> None:
    """Replace this process by the same command line (``sys.orig_argv``: interpreter, flags, script
    or ``-m`` module, arguments; the same pid) with :func:`huge_pages_env`'s environment, where that
    applies; else return at once. Called by the command line before a command that refines or trains
    (never by the Python API, whose callers own their process: they may set
    ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` themselves). Costs one more interpreter start (about
    0.3 s). An ``execv`` that fails (OSError) is ignored: the command runs without huge pages."""
    env = huge_pages_env()
    argv = list(getattr(sys, "orig_argv", []) or [])
    if env is None or len(argv) < 2 or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:
        return


__all__ = ["HUGE_PAGES_SWITCH", "huge_pages_env", "reexec_with_huge_pages", "trim_heap", "tune_allocator"]
