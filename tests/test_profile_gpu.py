"""benchmarks/gpu_profile.py runs end to end on the CPU (its intended device is CUDA; no timing is
checked, only the table's rows and the JSON)."""
import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import ROOT, disk_photo


@pytest.mark.slow
def test_gpu_profile_script_runs_on_cpu(tmp_path, tiny_checkpoint):
    img, mask = disk_photo(120, 160)
    Image.fromarray(img).save(tmp_path / "p.png")
    Image.fromarray(mask).save(tmp_path / "p_coarse.png")
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_profile.py"), "--device", "cpu",
                           "--image", str(tmp_path / "p.png"), "--checkpoint", str(tiny_checkpoint),
                           "--sizes", "200", "--runs", "1", "--warmup", "0", "--sam-batches", "1,2",
                           "--sam-photos", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    configs = ("original", "patched", "strided:4", "contour", "bbox", "hierarchical", "default", "crm-full/full",
               "crm-full/strided:4")
    assert [(r["size"][1], r["precision"], r["config"]) for r in rows] == [
        (s, p, c) for s in (200,) for p in ("fp32", "bf16") for c in configs]
    for r in rows:
        assert r["latency_s"] > 0 and r["peak_bytes"] > 0 and r["peak_kind"] == "process_peak_rss"
        assert 0 <= r["iou_vs_original"] <= 100
    assert all(r["iou_vs_original"] == 100 for r in rows if r["config"] == "original")
    assert "| 200x150 | bf16 | hierarchical |" in proc.stdout
    sam = result["sam_batches"]      # MobileSAM's encoder, 2 photos, batch 1 then 2 (sam-sr infer --sam-batch)
    assert [(r["batch"], r["photos"]) for r in sam] == [(1, 2), (2, 2)]
    assert all(r["per_photo_s"] > 0 and r["peak_bytes"] > 0 for r in sam)
    assert "| 2 | " in proc.stdout and "speed-up over batch 1" in proc.stdout


def test_gpu_profile_script_refuses_cuda_without_a_gpu():
    import torch
    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_profile.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "--device cpu" in proc.stderr
