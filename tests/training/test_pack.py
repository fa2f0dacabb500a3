"""sam_sr.training.pack: a training config's files and a resolved config in one new folder, which
trains on its own (no SAM_SR_DATA), refuses to overwrite, and leaves nothing when it fails."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from sam_sr.checkpoint import save_checkpoint
from sam_sr.config import load_config
from sam_sr.errors import SamSrError
from sam_sr.training.pack import pack_training
from sam_sr.variants import build_model
from tests.conftest import ROOT, TINY, save_pair


def _data(tmp_path):
    """A generic dataset of 4 photos (one with a coarse mask) and an ECSSD-layout one of 3, of which an
    ids file keeps 2."""
    gen = tmp_path / "data" / "gen"
    for i in range(4):
        save_pair(gen / "images", gen / "masks", f"g{i}", i)
    (gen / "coarse" / "net").mkdir(parents=True, exist_ok=True)
    (gen / "coarse" / "net" / "g1.png").write_bytes((gen / "masks" / "g1.png").read_bytes())
    ec = tmp_path / "data" / "ec"
    for i in range(3):
        save_pair(ec / "images", ec / "ground_truth_mask", f"{i:04d}", 10 + i)
    ids = tmp_path / "ids.txt"
    ids.write_text("# two of three\n0000\n0002\n")
    return [{"layout": "generic", "root": str(gen)}, {"layout": "ecssd", "root": str(ec), "ids_file": str(ids)}]


def _config(tmp_path, init=None):
    cfg = load_config(None, ["train.iterations=2", "train.batch_size=2", "data.crop_size=64",
                             "data.num_workers=0", f"train.out_dir={tmp_path / 'run'}"])
    cfg["model"] = dict(TINY)
    cfg["data"]["datasets"] = _data(tmp_path)
    cfg["train"]["init_checkpoint"] = init
    return cfg


def test_pack_copies_what_the_config_reads_and_rewrites_it(tmp_path):
    init = tmp_path / "init.pt"
    save_checkpoint(init, build_model("crm", TINY), "crm", TINY, iteration=0)
    out = tmp_path / "pack"
    m = pack_training(_config(tmp_path, str(init)), out, name="gpu")
    assert [d["samples"] for d in m["datasets"]] == [4, 2]
    d0, d1 = out / "data" / "d0", out / "data" / "d1"
    assert sorted(p.name for p in (d0 / "images").iterdir()) == [f"g{i}.jpg" for i in range(4)]
    assert [p.name for p in (d0 / "coarse" / "net").iterdir()] == ["g1.png"]
    assert sorted(p.name for p in (d1 / "masks").iterdir()) == ["0000.png", "0002.png"]
    src = tmp_path / "data" / "ec" / "images" / "0002.jpg"
    assert (d1 / "images" / "0002.jpg").read_bytes() == src.read_bytes()          # byte for byte
    cfg = yaml.safe_load((out / "train.yaml").read_text())
    assert cfg["data"]["datasets"] == [{"layout": "generic", "root": str(d0)}, {"layout": "generic", "root": str(d1)}]
    assert cfg["train"]["init_checkpoint"] == str(out / "init.pt") and (out / "init.pt").is_file()
    assert cfg["train"]["out_dir"] == "runs/gpu"
    assert json.loads((out / "manifest.json").read_text())["bytes"] == m["bytes"] > 0
    # the packed config reads as a config and finds the same samples, with no data folder named
    from sam_sr.data.datasets import concat_samples
    again = load_config(out / "train.yaml")
    assert len(concat_samples(again["data"]["datasets"])) == 6
    assert [s.coarse for s in concat_samples(again["data"]["datasets"]) if s.coarse][0]["net"].name == "g1.png"


def test_pack_refuses_an_existing_folder_a_missing_start_and_too_many_bytes(tmp_path):
    out = tmp_path / "pack"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SamSrError, match="already exists"):
        pack_training(_config(tmp_path), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]                          # untouched
    with pytest.raises(SamSrError, match="init_checkpoint .* not found"):
        pack_training(_config(tmp_path, str(tmp_path / "nowhere.pt")), tmp_path / "p2")
    with pytest.raises(SamSrError, match="over the 0.001 MiB allowed"):
        pack_training(_config(tmp_path), tmp_path / "p3", max_mib=0.001)
    bad = _config(tmp_path)
    bad["data"]["datasets"].append({"layout": "generic", "root": str(tmp_path / "missing")})
    with pytest.raises(SamSrError):
        pack_training(bad, tmp_path / "p4")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not any(n.startswith(("p2", "p3", "p4", ".p")) for n in left), left      # nothing half-written


@pytest.mark.slow
def test_device_script_trains_from_a_pack_and_returns_its_checkpoint(tmp_path):
    """scripts/device_train.sh, as a lent GPU machine runs it (here on the CPU, the wheels skipped):
    it trains the packed config with an override, and leaves the checkpoint, log and events in $OUT.
    A pack missing gives status 2 and one message."""
    work = tmp_path / "work"
    work.mkdir()
    pack_training(_config(tmp_path), work / ".device" / "pack")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "NO_WHEELS": "1", "BUDGET": "300",
           "PYTHONPATH": str(ROOT)}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "device_train.sh"), "train.iterations=3",
                        "train.keep_at=[2]", f"train.out_dir={work / 'run'}"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "final.pt", "iter_2.pt", "run.tgz", "train.log"]
    assert "done: 3 iterations" in (out / "train.log").read_text()
    from sam_sr.checkpoint import read_checkpoint
    assert read_checkpoint(out / "final.pt")["iteration"] == 3
    assert read_checkpoint(out / "iter_2.pt")["iteration"] == 2         # train.keep_at
    r = subprocess.run(["bash", str(ROOT / "scripts" / "device_train.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no pack at .device/pack" in r.stderr


def test_device_tree_strips_and_restores_the_tracked_weights(tmp_path):
    """scripts/device_tree.sh in a throwaway git repository: ``strip`` removes tracked weights from the
    working tree (keeping those named), ``size`` counts only what would travel and fails over 64 MiB,
    ``restore`` brings every weight back from git, and ``strip`` refuses an edited weight file."""
    repo = tmp_path / "repo"
    (repo / "sam_sr" / "weights").mkdir(parents=True)
    for name, n in (("big.pt", 70 * 2 ** 20), ("small.pt", 10), ("LICENSE", 5)):
        (repo / "sam_sr" / "weights" / name).write_bytes(b"\0" * n)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "weights"]):
        subprocess.run(git + args, cwd=repo, check=True)
    script = str(ROOT / "scripts" / "device_tree.sh")

    def run(*args):
        return subprocess.run(["bash", script, *args], cwd=repo, capture_output=True, text=True)

    assert run("size").returncode == 1                                   # 70 MiB: over the limit
    r = run("strip", "small.pt")
    assert r.returncode == 0 and "kept sam_sr/weights/small.pt" in r.stdout
    assert not (repo / "sam_sr/weights/big.pt").exists() and (repo / "sam_sr/weights/LICENSE").exists()
    r = run("size")
    assert r.returncode == 0 and r.stdout.startswith("tree 0.0 MiB"), r.stdout
    assert run("strip").returncode == 0                                  # again, with nothing kept
    r = run("restore")
    assert r.returncode == 0 and (repo / "sam_sr/weights/big.pt").stat().st_size == 70 * 2 ** 20
    (repo / "sam_sr/weights/small.pt").write_bytes(b"edited")
    r = run("strip")
    assert r.returncode == 2 and "uncommitted changes" in r.stderr
    assert (repo / "sam_sr/weights/big.pt").exists()                     # nothing removed
