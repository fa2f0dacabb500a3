"""Data-parallel runs: two CPU processes give the same outputs as one."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam_sr.batch.parallel import run_sharded
from sam_sr.data.coco import encode_mask
from tests.conftest import ROOT, TINY, disk_photo

WORKER = ROOT / "tests" / "parallel_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dataset(d):
    """5 photos (an odd number: uneven shards), one without a coarse mask, label maps, COCO files."""
    for sub in ("images", "masks", "labels"):
        (d / sub).mkdir(parents=True)
    results, images = [], []
    for i in range(5):
        img, mask = disk_photo(48, 64, seed=i)
        Image.fromarray(img).save(d / "images" / f"{i + 1:03d}.png")
        if i != 3:
            Image.fromarray(mask[::2, ::2]).save(d / "masks" / f"{i + 1:03d}.png")
        lab = np.zeros((48, 64), np.uint8)
        lab[mask > 0] = 1
        lab[:6, :] = 2
        lab[-2:, :] = 255
        Image.fromarray(lab).save(d / "labels" / f"{i + 1:03d}.png")
        images.append({"id": i + 1, "file_name": f"{i + 1:03d}.png", "height": 48, "width": 64})
        results.append({"image_id": i + 1, "category_id": 1, "score": 0.5 + i / 10,
                        "segmentation": encode_mask(mask > 0)})
    results.append({"image_id": 2, "category_id": 1, "score": 0.1,
                    "segmentation": {"size": [48, 64], "counts": "0P2"}})       # a bad RLE
    (d / "results.json").write_text(json.dumps(results))
    (d / "annotations.json").write_text(json.dumps({"images": images, "annotations": [],
                                                    "categories": [{"id": 1, "name": "x"}]}))


def _run(cmd, out):
    # CPU processes (gloo) even on a machine with GPUs: the test is about sharding, not devices
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run(cmd + [str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _load(out):
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    summaries = {}
    for name in ("masks_summary.json", "labels_summary.json", "coco_summary.json"):
        text = files.pop(name).decode().replace(str(out), "OUT")
        summaries[name] = json.loads(text)
    return files, summaries


@pytest.fixture
def skip_checkpoint(tmp_path):
    """A tiny random CRM with the coarse-mask skip: its output follows each input, so equal outputs
    mean the same work was done on the same item, not that a blank model gave blanks everywhere."""
    import torch

    from sam_sr.checkpoint import save_checkpoint
    from sam_sr.variants import build_model
    torch.manual_seed(0)
    model = build_model("crm", {**TINY, "mask_skip": True, "mask_skip_init": 2.0})
    p = tmp_path / "skip.pt"
    save_checkpoint(p, model, "crm", model.config.to_dict(), iteration=0)
    return p


def test_two_cpu_processes_equal_one(tmp_path, skip_checkpoint):
    data = tmp_path / "data"
    _dataset(data)
    args = [str(WORKER), str(skip_checkpoint), str(data)]
    _run([sys.executable] + args, tmp_path / "one")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port())]
    r = _run(launch + args, tmp_path / "two")
    assert "process 0 of 2 done" in r.stdout and "process 1 of 2 done" in r.stdout
    one_files, one_sum = _load(tmp_path / "one")
    two_files, two_sum = _load(tmp_path / "two")
    assert sorted(one_files) == sorted(two_files)
    assert {"masks/001.png", "masks/001_soft.png", "labels/005.png", "coco.json"} <= set(one_files)
    assert "masks/004.png" not in one_files                       # the photo without a mask failed
    import io
    refined = np.asarray(Image.open(io.BytesIO(one_files["masks/001.png"])))
    assert 0.05 < (refined > 0).mean() < 0.6                      # a mask that follows the photo's
    for name in one_files:
        assert one_files[name] == two_files[name], name
    assert one_sum == two_sum
    assert (one_sum["masks_summary.json"]["ok"], one_sum["masks_summary.json"]["failed"]) == (4, 1)
    assert one_sum["labels_summary.json"]["ok"] == 5
    c = one_sum["coco_summary.json"]
    assert (c["ok"], c["failed"], c["images"]) == (5, 1, 5)
    assert len(json.loads(one_files["coco.json"])) == 6
    assert not list((tmp_path / "two").glob(".*part*"))           # part files are merged and removed


def test_single_process_run_sharded_writes_its_summary(tmp_path):
    seen = []

    def work(jobs, desc):
        seen.append((list(jobs), desc))
        return {"kind": "masks", "total": len(jobs), "ok": len(jobs), "failed": 0, "items": []}

    out = run_sharded([{"index": 0}, {"index": 1}], work, tmp_path / "s.json")
    assert seen == [([{"index": 0}, {"index": 1}], "refine")]
    assert json.loads((tmp_path / "s.json").read_text()) == out


def test_single_process_errors_propagate(tmp_path):
    from sam_sr import SamSrError

    def work(jobs, desc):
        raise SamSrError("boom")

    with pytest.raises(SamSrError, match="boom"):
        run_sharded([1], work, tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_two_processes_through_the_command_line_equal_one(tmp_path, skip_checkpoint):
    """``accelerate launch -m sam_sr infer|coco`` (the real entry point) over 2 CPU processes: the same
    files and summaries as ``python -m sam_sr`` alone; one merged COCO file; exit status 1 for the
    photo without a mask and the bad RLE, as in one process."""
    data = tmp_path / "data"
    _dataset(data)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    outs = {}
    for name, prefix in (("one", [sys.executable]), ("two", launch)):
        out = tmp_path / name
        folder = ["-m", "sam_sr", "infer", "--images", str(data / "images"), "--masks", str(data / "masks"),
                  "--out", str(out / "masks"), "--soft", "--summary", str(out / "masks.json"),
                  "--checkpoint", str(skip_checkpoint)]
        coco = ["-m", "sam_sr", "coco", "--results", str(data / "results.json"), "--annotations",
                str(data / "annotations.json"), "--images", str(data / "images"), "--out", str(out / "coco.json"),
                "--summary", str(out / "coco_summary.json"), "--checkpoint", str(skip_checkpoint)]
        for argv in (folder, coco):
            port = ["--main_process_port", str(_free_port())] if name == "two" else []
            r = subprocess.run(prefix + port + argv, capture_output=True, text=True, env=env, timeout=600)
            assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]   # one bad item in each run
            assert r.stdout.count("refined ") == 1, r.stdout                # one summary line, from the main process
        outs[name] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    one, two = outs["one"], outs["two"]
    assert sorted(one) == sorted(two) == ["coco.json", "coco_summary.json", "masks.json", "masks/001.png",
                                          "masks/001_soft.png", "masks/002.png", "masks/002_soft.png",
                                          "masks/003.png", "masks/003_soft.png", "masks/005.png",
                                          "masks/005_soft.png"]
    for name in one:
        if name.endswith(".json"):
            a, b = (json.loads(x[name].decode().replace(str(tmp_path / n), "OUT")) for x, n in ((one, "one"), (two, "two")))
            assert a == b, name
        else:
            assert one[name] == two[name], name
    assert len(json.loads(two["coco.json"])) == 6
