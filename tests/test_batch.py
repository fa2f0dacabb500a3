"""Folder runs of binary masks and label maps: planning, per-item failures, outputs, summaries."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from sam_sr import SamSrError
from sam_sr.batch.folders import (
    merge_summaries,
    plan_label_folder,
    plan_mask_folder,
    run_label_jobs,
    run_mask_jobs,
    summary_line,
)
from sam_sr.inference.predictor import Refinement, prepare_mask
from tests.conftest import disk_photo, save_pair


class DilatingRefiner:
    """Grows the coarse mask by one pixel; soft map = the result / 255."""

    def predict(self, image, mask, mask_threshold=None):
        m = (np.asarray(mask) >= (0.5 if np.asarray(mask).dtype.kind == "f" else 128)).astype(np.uint8)
        if m.shape != image.shape[:2]:
            m = cv2.resize(m, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        out = cv2.dilate(m, np.ones((3, 3), np.uint8)) * 255
        return Refinement(out, out / 255.0, prepare_mask(mask, image.shape[:2], mask_threshold), {})

    def refine(self, image, mask, mask_threshold=None):
        return self.predict(image, mask, mask_threshold).mask


@pytest.fixture
def folder(tmp_path):
    for i in range(3):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", i)
        save_pair(tmp_path / "unused", tmp_path / "gt", f"p{i}", i)
    return tmp_path


# ------------------------------------------------------------------------------- planning


def test_plan_matches_by_stem_and_marks_missing_masks(folder):
    save_pair(folder / "images", folder / "elsewhere", "lonely", 5)
    jobs = plan_mask_folder(folder / "images", folder / "masks", folder / "out", soft=True, gt_dir=folder / "gt")
    assert [j["name"] for j in jobs] == ["lonely", "p0", "p1", "p2"]
    assert jobs[0]["missing"] and jobs[0]["coarse"] is None
    assert jobs[1]["coarse"] == str(folder / "masks" / "p0.png") and jobs[1]["gt"] == str(folder / "gt" / "p0.png")
    assert jobs[1]["out"] == str(folder / "out" / "p0.png") and jobs[1]["soft"] == str(folder / "out" / "p0_soft.png")
    json.dumps(jobs)


def test_plan_refuses_collisions_before_anything_runs(folder):
    Image.fromarray(disk_photo()[0]).save(folder / "images" / "p1.png")      # p1.jpg and p1.png
    with pytest.raises(SamSrError, match="same stem"):
        plan_mask_folder(folder / "images", folder / "masks", folder / "out")
    (folder / "images" / "p1.png").unlink()
    with pytest.raises(SamSrError, match="overwrite an input"):
        plan_mask_folder(folder / "images", folder / "masks", folder / "masks")   # out = masks folder
    Image.fromarray(disk_photo()[0]).save(folder / "images" / "p0_soft.jpg")
    with pytest.raises(SamSrError, match="written twice"):
        plan_mask_folder(folder / "images", folder / "masks", folder / "out", soft=True)
    with pytest.raises(SamSrError, match="lossy"):
        plan_mask_folder(folder / "images", folder / "masks", folder / "out", suffix=".jpg")
    with pytest.raises(SamSrError, match="coarse mask folder not found"):
        plan_mask_folder(folder / "images", folder / "nope", folder / "out")
    assert not (folder / "out").exists()


# ------------------------------------------------------------------------------- binary runs


def test_mask_run_writes_outputs_scores_and_reports_bad_items(folder, capsys, monkeypatch):
    save_pair(folder / "images", folder / "elsewhere", "lonely", 5)
    # a {0, 1} mask PNG, as many segmenters save: refined as its 0/255 twin would be
    m01 = (np.asarray(Image.open(folder / "masks" / "p1.png")) > 0).astype(np.uint8)
    Image.fromarray(m01).save(folder / "masks" / "p1.png")
    (folder / "out").mkdir()
    (folder / "out" / "p2.tif").mkdir()                         # an output path that is a folder
    jobs = plan_mask_folder(folder / "images", folder / "masks", folder / "out", gt_dir=folder / "gt",
                            suffix=".tif")
    s = run_mask_jobs(DilatingRefiner(), jobs, progress=False)
    status = {it["name"]: (it["status"], it["error"]) for it in s["items"]}
    assert status["p0"] == ("ok", None) and status["p1"] == ("ok", None)
    assert "no coarse mask" in status["lonely"][1] and "is a folder" in status["p2"][1]
    assert (s["total"], s["ok"], s["failed"]) == (4, 2, 2)
    out = np.asarray(Image.open(folder / "out" / "p1.tif"))
    assert Image.open(folder / "out" / "p1.tif").format == "TIFF"
    assert np.array_equal(out, DilatingRefiner().predict(np.zeros((96, 128, 3), np.uint8), m01 * 255).mask)
    rec = next(it for it in s["items"] if it["name"] == "p1")
    assert 0 < rec["change"] < 0.5
    assert rec["iou_coarse"] == pytest.approx(1.0) and rec["iou_refined"] < 1.0   # gt = the coarse mask
    err = capsys.readouterr().err
    assert "error: lonely.jpg" in err and "error: p2.jpg" in err
    assert "refined 2 of 4 images" in summary_line(s) and "2 failed" in summary_line(s)
    # a second run refuses to overwrite (per item), --force overwrites
    again = run_mask_jobs(DilatingRefiner(), jobs, progress=False, verbose=False)
    assert next(it for it in again["items"] if it["name"] == "p0")["error"].startswith("output exists")
    forced = run_mask_jobs(DilatingRefiner(), jobs, force=True, progress=False, verbose=False)
    assert forced["ok"] == 2


def test_an_oversized_photo_fails_alone(folder, monkeypatch):
    big = np.zeros((300, 300, 3), np.uint8)
    Image.fromarray(big).save(folder / "images" / "huge.png")
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(folder / "masks" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)      # 90,000 px > 2 x the limit
    jobs = plan_mask_folder(folder / "images", folder / "masks", folder / "out")
    s = run_mask_jobs(DilatingRefiner(), jobs, progress=False, verbose=False)
    bad = [it for it in s["items"] if it["status"] == "failed"]
    assert [it["name"] for it in bad] == ["huge"] and "too large" in bad[0]["error"]
    assert s["ok"] == 3


def test_merge_summaries_orders_items_and_recounts():
    a = {"kind": "masks", "total": 1, "ok": 1, "failed": 0, "items": [{"index": 2, "status": "ok"}]}
    b = {"kind": "masks", "total": 2, "ok": 1, "failed": 1,
         "items": [{"index": 0, "status": "failed"}, {"index": 1, "status": "ok"}]}
    m = merge_summaries([a, b])
    assert [it["index"] for it in m["items"]] == [0, 1, 2] and (m["ok"], m["failed"]) == (2, 1)
    with pytest.raises(SamSrError, match="different kinds"):
        merge_summaries([a, {**b, "kind": "labels"}])


# ------------------------------------------------------------------------------- label maps


class ClassRefiner:
    """refine_semantic's binary refiner: each class keeps its mask (soft 0.9 inside, 0.1 outside)."""

    def predict(self, image, mask, mask_threshold=None):
        m = np.asarray(mask) > 127
        soft = np.where(m, 0.9, 0.1).astype(np.float32)
        return Refinement(m.astype(np.uint8) * 255, soft, m.astype(np.float32), {})


def _label_folder(tmp_path, palette=True):
    pal = [0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 9)
    for i in range(3):
        img, mask = disk_photo(40, 50, seed=i)
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / "images" / f"s{i}.jpg")
        lab = (mask > 0).astype(np.uint8)
        lab[:5] = 2
        lab[-3:] = 255
        if i == 1:
            lab[10, 10] = 7                       # above num_classes
        im = Image.fromarray(lab)
        if palette:
            im.putpalette(pal)
        im.save(tmp_path / "labels" / f"s{i}.png")
    return pal


def test_label_run_keeps_palettes_and_rejects_labels_above_num_classes(tmp_path, capsys):
    pal = _label_folder(tmp_path)
    jobs = plan_label_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "out")
    s = run_label_jobs(ClassRefiner(), jobs, num_classes=3, ignore_index=255, progress=False)
    assert (s["ok"], s["failed"], s["num_classes"], s["ignore_index"]) == (2, 1, 3, 255)
    bad = next(it for it in s["items"] if it["status"] == "failed")
    assert bad["name"] == "s1" and "s1.png" in bad["error"] and "outside 0..2" in bad["error"]
    assert ": 7 (1 pixels)" in bad["error"]
    out = Image.open(tmp_path / "out" / "s0.png")
    assert out.mode == "P" and out.getpalette()[:9] == pal[:9]
    src = np.asarray(Image.open(tmp_path / "labels" / "s0.png"))
    assert np.array_equal(np.asarray(out), src)               # the stand-in refiner keeps every class
    assert not (tmp_path / "out" / "s1.png").exists()
    assert "error: s1.jpg" in capsys.readouterr().err


def test_label_run_checks_num_classes_first(tmp_path):
    _label_folder(tmp_path, palette=False)
    jobs = plan_label_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "out")
    with pytest.raises(SamSrError, match="num_classes"):
        run_label_jobs(ClassRefiner(), jobs, num_classes=0)


def test_prefetch_reads_the_next_job_while_the_current_one_runs_and_keeps_errors_per_job():
    import threading

    from sam_sr.batch.folders import _Prefetch
    jobs = [{"name": str(i)} for i in range(3)]
    started = {str(i): threading.Event() for i in range(3)}

    def read(job):
        if job["name"] in started:
            started[job["name"]].set()
        if job["name"] == "1":
            raise ValueError("unreadable 1")
        return job["name"]

    p = _Prefetch(jobs, read)
    try:
        assert p.get(jobs[0]) == "0"
        assert started["1"].wait(10)               # job 1's read began before job 0's result was used
        with pytest.raises(ValueError, match="unreadable 1"):
            p.get(jobs[1])
        assert p.get(jobs[2]) == "2"
        assert p.get({"name": "other"}) == "other"   # a job not in the plan is read in place
    finally:
        p.close()


class EmbeddingRefiner:
    """A SAM-guided stand-in: a real live tiny SAM; the output marks the cells whose mean embedding
    is positive, and each photo's embedding is kept for the test."""

    def __init__(self, fail_batches: bool = False):
        from types import SimpleNamespace

        from sam_sr.sam import build_tiny_sam
        from sam_sr.sam.source import LiveSam
        self.sam_inputs = SimpleNamespace(source=LiveSam(build_tiny_sam(image_size=256)))
        self.info, self.seen, self.calls = {}, [], []
        enc = self.sam_inputs.source.sam.image_encoder

        def hook(module, args):
            self.calls.append(args[0].shape[0])
            if fail_batches and args[0].shape[0] > 1:
                raise RuntimeError("CUDA out of memory (a stand-in)")
        enc.register_forward_pre_hook(hook)

    def predict(self, image, mask, mask_threshold=None):
        f = self.sam_inputs.source.predictor(image).features[0].mean(0)
        self.seen.append(f.clone())
        h, w = image.shape[:2]
        out = cv2.resize((f > 0).numpy().astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) * 255
        return Refinement(out, out / 255.0, prepare_mask(mask, image.shape[:2], mask_threshold), {})


def _sam_folder(tmp_path, n=5):
    for i in range(n):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", i)
    return plan_mask_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "out")


def test_sam_batch_encodes_photos_in_batches_with_the_same_results(tmp_path):
    jobs = _sam_folder(tmp_path)
    one, three = EmbeddingRefiner(), EmbeddingRefiner()
    s1 = run_mask_jobs(one, jobs, progress=False)
    s3 = run_mask_jobs(three, jobs, progress=False, force=True, sam_batch=3)
    assert s1["ok"] == s3["ok"] == 5
    assert one.calls == [1] * 5 and three.calls == [3, 2]
    for a, b in zip(one.seen, three.seen):
        assert np.allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_sam_batch_skips_photos_that_will_not_be_refined_and_survives_a_failing_batch(tmp_path, capsys):
    jobs = _sam_folder(tmp_path, 4)
    (tmp_path / "out").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "out" / "p1.png")   # its output exists
    r = EmbeddingRefiner()
    s = run_mask_jobs(r, jobs, progress=False, verbose=False, sam_batch=4)
    assert r.calls == [3] and s["ok"] == 3 and s["failed"] == 1     # p1 is not encoded
    failing = EmbeddingRefiner(fail_batches=True)
    s = run_mask_jobs(failing, jobs, progress=False, force=True, sam_batch=2)
    assert s["ok"] == 4 and failing.calls == [2, 1, 1, 1, 1]
    assert capsys.readouterr().err.count("going on one photo at a time") == 1


def test_sam_batch_gives_the_default_models_outputs(tmp_path):
    """The shipped default (MobileSAM, bundled) over three photos: batches of 3 write the masks of
    batch 1 (up to float rounding, which no pixel of these crosses)."""
    from sam_sr import Refiner
    from sam_sr.imaging import read_image, read_mask
    from sam_sr.cli.infer import EXAMPLE_IMAGE, EXAMPLE_MASK
    from tests.conftest import ROOT
    img = read_image(ROOT / "sam_sr" / "assets" / EXAMPLE_IMAGE)
    mask = (read_mask(ROOT / "sam_sr" / "assets" / EXAMPLE_MASK) * 255).astype(np.uint8)
    mask = cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)   # stored smaller
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name, (i, m) in {"a": (img, mask), "b": (img[:, ::-1], mask[:, ::-1]),
                         "c": (img[40:-40, 60:], mask[40:-40, 60:])}.items():
        Image.fromarray(np.ascontiguousarray(i)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.ascontiguousarray(m)).save(tmp_path / "masks" / f"{name}.png")
    refiner = Refiner.from_checkpoint(device="cpu", precision="fp32")
    calls = []
    refiner.sam_inputs.source.sam.image_encoder.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    outs = {}
    for b, want in ((1, [1, 1, 1]), (3, [3])):
        jobs = plan_mask_folder(tmp_path / "images", tmp_path / "masks", tmp_path / f"out{b}")
        calls.clear()
        assert run_mask_jobs(refiner, jobs, progress=False, sam_batch=b)["ok"] == 3
        assert calls == want
        outs[b] = [np.asarray(Image.open(tmp_path / f"out{b}" / f"{n}.png")) for n in "abc"]
    for x, y in zip(outs[1], outs[3]):
        assert x.shape == y.shape and (x != y).sum() == 0
