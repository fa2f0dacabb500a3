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


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
                    reason="glibc's malloc_trim exists on Linux only")
def test_small_images_skip_the_trim_and_large_ones_take_it():
    assert heap.trim_heap(481 * 321) is False
    assert heap.trim_heap(heap.TRIM_MIN_PIXELS) is True
    assert heap.trim_heap(3492 * 2328) is True


def _linux_glibc(monkeypatch, version=(2, 36), mode="madvise"):
    monkeypatch.setattr(heap.sys, "platform", "linux")
    monkeypatch.setattr(heap, "_glibc_version", lambda: version)
    monkeypatch.setattr(heap, "_thp_mode", lambda: mode)


def test_huge_pages_env_adds_the_tunable_once_and_keeps_the_others(monkeypatch):
    _linux_glibc(monkeypatch)
    on = {heap.HUGE_PAGES_SWITCH: "1"}
    env = heap.huge_pages_env({"PATH": "/bin", **on})
    assert env["GLIBC_TUNABLES"] == heap.HUGE_PAGES_TUNABLE and env["PATH"] == "/bin"
    env2 = heap.huge_pages_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", **on})
    assert env2["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{heap.HUGE_PAGES_TUNABLE}"
    assert heap.huge_pages_env(env) is None          # re-executed already: never a loop


@pytest.mark.parametrize("case", ["not asked for", "old glibc", "no glibc", "thp never", "switched off",
                                  "set by user", "macos"])
def test_huge_pages_env_does_not_apply(monkeypatch, case):
    _linux_glibc(monkeypatch, version={"old glibc": (2, 31), "no glibc": None}.get(case, (2, 36)),
                 mode="never" if case == "thp never" else "madvise")
    if case == "macos":
        monkeypatch.setattr(heap.sys, "platform", "darwin")
    environ = {"switched off": {"SAM_SR_TUNE_MALLOC": "0"},
               "set by user": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}}.get(case, {})
    if case != "not asked for":
        environ[heap.HUGE_PAGES_SWITCH] = "1"
    assert heap.huge_pages_env(environ) is None


def test_thp_mode_reads_the_selected_mode(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert heap._thp_mode(str(f)) == "madvise"
    assert heap._thp_mode(str(tmp_path / "missing")) is None


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._glibc_version() is None
                    or heap._glibc_version() < (2, 35) or heap._thp_mode() not in ("always", "madvise"),
                    reason="glibc >= 2.35 and transparent huge pages are needed")
def test_a_command_re_executes_itself_once_with_huge_pages(tmp_path):
    """With SAM_SR_HUGE_PAGES=1, ``python -m sam_sr infer`` (a bad path: it fails fast) runs with the
    tunable set, in one re-executed process (same pid); ``--help``, SAM_SR_TUNE_MALLOC=0 and the
    default (no SAM_SR_HUGE_PAGES) never re-execute."""
    import os
    import subprocess
    probe = tmp_path / "probe.py"
    probe.write_text("import os, sys\n"
                     "from sam_sr.cli import main\n"
                     "print(os.getpid(), os.environ.get('GLIBC_TUNABLES', ''), flush=True)\n"
                     "raise SystemExit(main())\n")
    plain = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "SAM_SR_REEXEC",
                                                             heap.HUGE_PAGES_SWITCH)}
    env = {**plain, heap.HUGE_PAGES_SWITCH: "1"}
    r = subprocess.run([sys.executable, str(probe), "infer", "--image", str(tmp_path / "no.jpg"), "--mask",
                        str(tmp_path / "no.png"), "--out", str(tmp_path / "o.png")],
                       capture_output=True, text=True, env=env)
    lines = r.stdout.split("\n")[:2]
    assert r.returncode == 2 and "image not found" in r.stderr
    assert lines[0].split()[0] == lines[1].split()[0]              # execve keeps the pid
    assert lines[0].split()[1:] == [] and lines[1].split()[1] == heap.HUGE_PAGES_TUNABLE
    for extra, env2 in ((["--help"], env), ([], {**env, "SAM_SR_TUNE_MALLOC": "0"}), ([], plain)):
        r = subprocess.run([sys.executable, str(probe), "infer", *extra], capture_output=True, text=True, env=env2)
        starts = [line.split() for line in r.stdout.split("\n") if line.split()[:1] == [r.stdout.split()[0]]]
        assert starts == [[r.stdout.split()[0]]], r.stdout      # one start, without the tunable
