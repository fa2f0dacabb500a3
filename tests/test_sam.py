"""SAM / MobileSAM loading through the real libraries, and the semantic evaluation wiring."""
import numpy as np
import pytest
from PIL import Image

from sam_sr import SamSrError
from sam_sr.cli import main
from sam_sr.evaluation.semantic import evaluate_semantic, list_pairs
from sam_sr.sam import build_tiny_sam, load_sam, mask_generator
from tests.conftest import SHARED

MOBILE_SAM = SHARED / "weights" / "mobile_sam.pt"
needs_mobile_sam = pytest.mark.skipif(not MOBILE_SAM.is_file(),
                                      reason="MobileSAM checkpoint ../shared/weights/mobile_sam.pt is absent")


@pytest.mark.slow
@needs_mobile_sam
def test_real_mobile_sam_loads_and_segments():
    sam = load_sam("vit_t", MOBILE_SAM, device="cpu")
    assert type(sam).__module__.startswith("mobile_sam")
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:70, 30:90] = (220, 40, 40)
    masks = mask_generator(sam, points_per_side=4).generate(image)
    assert masks and all(m["segmentation"].shape == (96, 128) for m in masks)
    best = max(masks, key=lambda m: m["predicted_iou"])
    assert best["segmentation"].dtype == bool


@pytest.mark.slow
@needs_mobile_sam
def test_checkpoint_of_another_sam_type_is_rejected():
    with pytest.raises(SamSrError, match="not a vit_b SAM checkpoint"):
        load_sam("vit_b", MOBILE_SAM, device="cpu")


def test_sam_loading_errors(tmp_path):
    with pytest.raises(SamSrError, match="unknown SAM type"):
        load_sam("vit_x", tmp_path / "x.pt")
    with pytest.raises(SamSrError, match="not found"):
        load_sam("vit_t", tmp_path / "x.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(SamSrError, match="cannot read SAM checkpoint"):
        load_sam("vit_t", bad)


def _camvid(tmp_path, n=2):
    for i in range(n):
        d = tmp_path / "test"
        (d / "images").mkdir(parents=True, exist_ok=True)
        (d / "labels").mkdir(parents=True, exist_ok=True)
        lab = np.zeros((48, 64), np.uint8)
        lab[:20] = 0
        lab[20:] = 3
        lab[25:40, 10 + i:30] = 8
        lab[0, :] = 11
        img = np.stack([lab * 20, lab * 10, 255 - lab * 20], -1).astype(np.uint8)
        Image.fromarray(img).save(d / "images" / f"im{i}.jpg")
        Image.fromarray(lab).save(d / "labels" / f"im{i}.png")
    return tmp_path


def test_semantic_evaluation_wiring_with_tiny_sam(tmp_path, tiny_checkpoint):
    from sam_sr import Refiner
    pairs = list_pairs(_camvid(tmp_path), "test")
    methods = ["baseline", "refine", "majority", "prompt:box", "prompt:points_box_mask", "det:coarse",
               "det:oracle"]
    res = evaluate_semantic(pairs, methods, 11, 11, factor=4, refiner=Refiner.from_checkpoint(tiny_checkpoint),
                            sam=build_tiny_sam(), points_per_side=4)
    assert set(res) == set(methods)
    assert all(0 <= r["miou"] <= 100 and r["n"] == 2 for r in res.values())
    with pytest.raises(SamSrError, match="needs SAM"):
        evaluate_semantic(pairs, ["majority"], 11, 11)
    with pytest.raises(SamSrError, match="unknown method"):
        evaluate_semantic(pairs, ["prompt:scribble"], 11, 11, sam=build_tiny_sam())
    with pytest.raises(SamSrError, match="unknown label merge"):
        evaluate_semantic(pairs, ["baseline"], 11, 11, merge="vote")


def test_semantic_evaluation_passes_its_label_merge(tmp_path, tiny_checkpoint, monkeypatch):
    import sam_sr.inference.labels as labels_module
    from sam_sr import Refiner
    from sam_sr.inference.labels import LABEL_MERGES
    pairs = list_pairs(_camvid(tmp_path), "test")
    seen = []
    real = labels_module.merge_class_probabilities
    monkeypatch.setattr(labels_module, "merge_class_probabilities", lambda *a, **k: seen.append(a[5:7]) or real(*a, **k))
    refiner = Refiner.from_checkpoint(tiny_checkpoint)
    for merge in LABEL_MERGES:
        seen.clear()
        evaluate_semantic(pairs, ["refine"], 11, 11, factor=4, refiner=refiner, merge=merge)
        assert seen and set(seen) == {(LABEL_MERGES[merge]["switch_margin"], LABEL_MERGES[merge]["open_margin"])}


def test_semantic_eval_cli_baseline_only(tmp_path, capsys):
    root = _camvid(tmp_path)
    assert main(["eval-semantic", "--root", str(root), "--methods", "baseline", "--factor", "4",
                               "--json", str(tmp_path / "r.json")]) == 0
    assert "| baseline |" in capsys.readouterr().out
    assert main(["eval-semantic", "--root", str(tmp_path / "nope"), "--methods", "baseline"]) == 2


@pytest.mark.slow
@needs_mobile_sam
def test_every_variant_runs_from_infer_with_real_mobile_sam(tmp_path):
    """infer.py --variant X --sam-type vit_t --sam-checkpoint mobile_sam.pt, for all eight variants
    (random-weight refiners: this checks the wiring with the real SAM, not quality)."""
    import torch

    from sam_sr.checkpoint import save_checkpoint
    from sam_sr.cli import infer_main
    from sam_sr.variants import build_model
    from tests.conftest import TINY, disk_photo
    image, mask = disk_photo(96, 128, seed=3)
    Image.fromarray(image).save(tmp_path / "im.png")
    Image.fromarray(mask[::4, ::4]).save(tmp_path / "coarse.png")
    v3 = {"cnn_channels": [8, 8, 8], "sam_proj": 8, "heads": 2, "fusion_channels": 16,
          "decoder_hidden": [16, 16]}
    for variant in ("crm", "v1", "v2.1", "v2.2", "v3.1", "v3.2", "v3.3", "v3.4"):
        torch.manual_seed(0)
        arch = "crm" if variant == "v1" else variant    # v1 runs a CRM checkpoint
        model = build_model(arch, v3 if variant.startswith("v3") else TINY)
        ckpt = tmp_path / f"{variant}.pt"
        save_checkpoint(ckpt, model, arch, model.config.to_dict())
        out = tmp_path / f"{variant}.png"
        code = infer_main(["--image", str(tmp_path / "im.png"), "--mask", str(tmp_path / "coarse.png"),
                           "--out", str(out), "--checkpoint", str(ckpt), "--variant", variant,
                           "--sam-type", "vit_t", "--sam-checkpoint", str(MOBILE_SAM),
                           "--points-per-side", "4", "--sam-cache", str(tmp_path / "cache"),
                           "--device", "cpu"])
        assert code == 0, variant
        result = np.asarray(Image.open(out))
        assert result.shape == (96, 128) and set(np.unique(result)) <= {0, 255}
    # one embedding and one set of automatic masks were cached for the image, then reused
    assert len(list((tmp_path / "cache").rglob("*.embedding.npz"))) == 1
    assert len(list((tmp_path / "cache").rglob("*.masks-p4.npz"))) == 1


def test_bundled_mobile_sam_is_checked_and_loads_without_warnings():
    import subprocess
    import sys

    from sam_sr.sam.loader import BUNDLED_SAM, BUNDLED_SAM_SHA256, file_sha256
    assert BUNDLED_SAM.is_file() and file_sha256(BUNDLED_SAM) == BUNDLED_SAM_SHA256
    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from sam_sr.sam import load_sam\n"
            "    sam = load_sam(device='cpu')\n"
            "print(type(sam).__module__, len(w), [str(x.message)[:60] for x in w])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("mobile_sam") and " 0 []" in out.stdout, out.stdout
    assert out.stderr == ""


def test_wrong_hash_and_missing_bundled_file_are_one_clear_error(tmp_path, monkeypatch):
    import shutil

    from sam_sr.sam import loader
    copy = tmp_path / "mobile_sam.pt"
    shutil.copy(loader.BUNDLED_SAM, copy)
    with open(copy, "r+b") as f:          # one flipped byte in the middle
        f.seek(20_000_000)
        b = f.read(1)
        f.seek(20_000_000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(SamSrError, match=f"{copy}.*sha256"):
        load_sam("vit_t", copy, sha256=loader.BUNDLED_SAM_SHA256)
    monkeypatch.setattr(loader, "BUNDLED_SAM", copy)
    with pytest.raises(SamSrError, match="sha256"):
        load_sam()
    monkeypatch.setattr(loader, "BUNDLED_SAM", tmp_path / "gone.pt")
    with pytest.raises(SamSrError, match="bundled MobileSAM checkpoint is missing"):
        load_sam()
    with pytest.raises(SamSrError, match="needs a checkpoint"):
        load_sam("vit_b")


def test_the_bundled_encoder_runs_channels_last_and_computes_what_the_plain_one_does():
    """load_sam puts the image encoder's convolution weights in channels-last order (a speed-up of
    oneDNN's convolutions); the embedding equals the one of the same weights in contiguous order up to
    float rounding."""
    import torch
    sam = load_sam(device="cpu")
    convs = [m for m in sam.image_encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fast = sam.image_encoder(x)
        sam.image_encoder.to(memory_format=torch.contiguous_format)
        dense = next(m for m in convs if m.kernel_size[0] > 1 and m.weight.shape[1] > 1)
        assert not dense.weight.is_contiguous(memory_format=torch.channels_last)   # the plain order, really
        plain = sam.image_encoder(x)
    assert fast.shape == plain.shape == (1, 256, 64, 64)
    assert float((fast - plain).norm() / plain.norm()) < 1e-5
