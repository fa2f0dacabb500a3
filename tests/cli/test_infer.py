"""``sam-sr infer``: output checks of one image, folder and label-map folder runs (summary, report,
ground truth, formats, per-item failures), and ``eval --json`` checked before evaluating."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from sam_sr.cli import infer_main, main
from tests.conftest import disk_photo, save_pair


def _one_error(capsys, text):
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], err


@pytest.mark.parametrize("case,text", [
    ("out_is_image", "is the input --image"),
    ("out_is_mask", "is the input --mask"),
    ("overlay_is_out", "--out and --overlay are the same file"),
    ("soft_is_overlay", "--soft and --overlay are the same file"),
    ("out_jpg", "lossy"),
    ("gt_single", "--gt cannot be used with one --image"),
    ("sam_batch_single", "--sam-batch cannot be used with one --image"),
    ("sam_batch_zero", "--sam-batch"),
    ("keep_sam_cache", "--sam-cache cannot be used with --regions keep"),
])
def test_single_image_outputs_never_replace_an_input_or_each_other(single, tiny_checkpoint, capsys, case, text):
    photo, mask = single / "photo.png", single / "mask.png"
    before = {p: p.read_bytes() for p in (photo, mask)}
    out, extra = single / "out.png", []
    if case == "out_is_image":
        out = photo
    elif case == "out_is_mask":
        out = mask
    elif case == "overlay_is_out":
        extra = ["--overlay", str(out)]
    elif case == "soft_is_overlay":
        extra = ["--soft", "--overlay", str(single / "out_soft.png")]
    elif case == "out_jpg":
        out = single / "out.jpg"
    elif case == "gt_single":
        extra = ["--gt", str(single)]
    elif case == "sam_batch_single":
        extra = ["--sam-batch", "4"]
    elif case == "sam_batch_zero":
        extra = ["--sam-batch", "0"]
    elif case == "keep_sam_cache":
        extra = ["--regions", "keep", "--sam-cache", str(single / "cache")]
    rc = infer_main(["--image", str(photo), "--mask", str(mask), "--out", str(out), "--force",
                     "--checkpoint", str(tiny_checkpoint), *extra])
    assert rc == 2
    _one_error(capsys, text)
    assert {p: p.read_bytes() for p in (photo, mask)} == before
    assert sorted(p.name for p in single.iterdir()) == ["mask.png", "photo.png", "tiny.pt"]


def test_a_tif_output_gets_tiff_bytes_and_a_tif_soft_map(single, tiny_checkpoint):
    out = single / "out.tif"
    assert infer_main(["--image", str(single / "photo.png"), "--mask", str(single / "mask.png"), "--out",
                       str(out), "--soft", "--checkpoint", str(tiny_checkpoint)]) == 0
    assert Image.open(out).format == "TIFF" and Image.open(single / "out_soft.tif").format == "TIFF"


def test_a_0_1_mask_file_refines_like_0_255(single, tiny_checkpoint):
    mask01 = single / "mask01.png"
    Image.fromarray((np.asarray(Image.open(single / "mask.png")) > 0).astype(np.uint8)).save(mask01)
    outs = []
    for m in (single / "mask.png", mask01):
        out = single / f"out_{m.stem}.png"
        assert infer_main(["--image", str(single / "photo.png"), "--mask", str(m), "--out", str(out),
                           "--checkpoint", str(tiny_checkpoint)]) == 0
        outs.append(np.asarray(Image.open(out)))
    assert outs[0].any() and np.array_equal(outs[0], outs[1])


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "gt").mkdir()
    for i in range(3):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", i, img_ext=".png")
        Image.open(tmp_path / "masks" / f"p{i}.png").save(tmp_path / "gt" / f"p{i}.png")
    save_pair(tmp_path / "images", tmp_path / "nowhere", "nomask", 5, img_ext=".png")
    return tmp_path


def test_folder_run_writes_outputs_summary_and_report_and_reports_bad_items(folder, tiny_checkpoint, capsys):
    out = folder / "out"
    rc = main(["infer", "--images", str(folder / "images"), "--masks", str(folder / "masks"), "--out", str(out),
               "--gt", str(folder / "gt"), "--soft", "--summary", str(folder / "s.json"), "--report",
               str(folder / "r.html"), "--checkpoint", str(tiny_checkpoint)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "error: nomask.png: no coarse mask" in captured.err
    assert "refined 3 of 4 images" in captured.out and "vs ground truth (3 images)" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted([f"p{i}{s}.png" for i in range(3) for s in ("", "_soft")])
    s = json.loads((folder / "s.json").read_text())
    assert (s["total"], s["ok"], s["failed"]) == (4, 3, 1)
    ok = [it for it in s["items"] if it["status"] == "ok"]
    assert all(0 <= it["iou_coarse"] <= 1 and 0 <= it["mba_refined"] <= 1 for it in ok)
    page = (folder / "r.html").read_text()
    assert "p0.png" in page and "nomask.png" in page and (folder / "r_files").is_dir()
    assert not list(out.glob(".*"))                                   # no part or temporary files


@pytest.mark.parametrize("case,text", [
    ("same_stem", "same stem"),
    ("out_is_masks", "overwrite an input"),
    ("report_exists", "exists"),
    ("summary_not_json", "name it .json"),
    ("report_not_html", "name it .html"),
    ("overlay", "--overlay cannot be used in a folder run"),
    ("keep_sam_batch", "--sam-batch cannot be used with --regions keep"),
])
def test_folder_runs_are_refused_before_they_start(folder, tiny_checkpoint, capsys, case, text):
    out, extra = folder / "out", []
    if case == "same_stem":
        Image.open(folder / "images" / "p0.png").save(folder / "images" / "p0.jpg")
    elif case == "out_is_masks":
        out = folder / "masks"
    elif case == "report_exists":
        (folder / "r.html").write_text("mine")
        extra = ["--report", str(folder / "r.html")]
    elif case == "summary_not_json":
        extra = ["--summary", str(folder / "s.txt")]
    elif case == "report_not_html":
        extra = ["--report", str(folder / "r.txt")]
    elif case == "overlay":
        extra = ["--overlay", str(folder / "o.png")]
    elif case == "keep_sam_batch":
        extra = ["--regions", "keep", "--sam-batch", "2"]
    masks = {p.name: p.read_bytes() for p in (folder / "masks").iterdir()}
    rc = infer_main(["--images", str(folder / "images"), "--masks", str(folder / "masks"), "--out", str(out),
                     "--checkpoint", str(tiny_checkpoint), "--force" if case == "out_is_masks" else "--soft", *extra])
    assert rc == 2
    _one_error(capsys, text)
    assert not (folder / "out").exists()
    assert {p.name: p.read_bytes() for p in (folder / "masks").iterdir()} == masks
    if case == "report_exists":
        assert (folder / "r.html").read_text() == "mine"


def test_folder_run_in_tiff(folder, tiny_checkpoint):
    out = folder / "out"
    assert infer_main(["--images", str(folder / "images"), "--masks", str(folder / "masks"), "--out", str(out),
                       "--ext", ".tif", "--checkpoint", str(tiny_checkpoint)]) == 1      # nomask fails
    assert sorted(p.name for p in out.iterdir()) == ["p0.tif", "p1.tif", "p2.tif"]
    assert Image.open(out / "p0.tif").format == "TIFF"


@pytest.fixture
def label_folder(tmp_path):
    for d in ("images", "labels", "gt"):
        (tmp_path / d).mkdir()
    for i in range(3):
        img, mask = disk_photo(48, 64, seed=i)
        Image.fromarray(img).save(tmp_path / "images" / f"{i}.png")
        lab = (mask > 0).astype(np.uint8)
        lab[:6] = 2
        lab[-2:] = 255
        im = Image.fromarray(lab)
        im.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [9] * (253 * 3))
        im.save(tmp_path / "labels" / f"{i}.png")
        Image.fromarray(lab).save(tmp_path / "gt" / f"{i}.png")
    return tmp_path


def test_label_map_folder_run(label_folder, tiny_checkpoint, capsys):
    d = label_folder
    lab = np.asarray(Image.open(d / "labels" / "2.png")).copy()
    lab[10, 10] = 7                                                    # above --num-classes: fails alone
    Image.fromarray(lab).save(d / "labels" / "2.png")
    rc = main(["infer", "--images", str(d / "images"), "--labels", str(d / "labels"), "--num-classes", "3",
               "--ignore-index", "255", "--out", str(d / "out"), "--gt", str(d / "gt"), "--summary",
               str(d / "s.json"), "--report", str(d / "r.html"), "--checkpoint", str(tiny_checkpoint)])
    captured = capsys.readouterr()
    assert rc == 1 and "labels outside 0..2 and the ignore index 255: 7" in captured.err
    assert sorted(p.name for p in (d / "out").iterdir()) == ["0.png", "1.png"]
    res = Image.open(d / "out" / "0.png")
    assert res.mode == "P" and res.getpalette()[:9] == [0, 0, 0, 200, 0, 0, 0, 200, 0]
    arr = np.asarray(res)
    assert (arr[-2:] == 255).all() and set(np.unique(arr)) <= {0, 1, 2, 255}
    s = json.loads((d / "s.json").read_text())
    assert s["kind"] == "labels" and (s["ok"], s["failed"]) == (2, 1)
    assert all(it["iou_coarse"] is not None for it in s["items"] if it["status"] == "ok")
    assert (d / "r.html").is_file()


def test_label_map_options_are_checked(label_folder, tiny_checkpoint, capsys):
    d = label_folder
    base = ["--images", str(d / "images"), "--labels", str(d / "labels"), "--out", str(d / "out"),
            "--checkpoint", str(tiny_checkpoint)]
    assert infer_main(base) == 2
    _one_error(capsys, "--num-classes")
    assert infer_main(base + ["--num-classes", "3", "--fusion", "majority"]) == 2
    _one_error(capsys, "--fusion works on one --image")
    assert infer_main(base + ["--num-classes", "3", "--sam-batch", "2"]) == 2
    _one_error(capsys, "--sam-batch cannot be used with --labels")
    assert infer_main(["--image", str(d / "images" / "0.png"), "--labels", str(d / "labels"), "--num-classes",
                       "3", "--out", str(d / "o.png"), "--checkpoint", str(tiny_checkpoint)]) == 2
    _one_error(capsys, "is a folder")
    # one label map with labels above --num-classes: refused for every fusion method, before SAM loads
    assert infer_main(["--image", str(d / "images" / "0.png"), "--labels", str(d / "labels" / "0.png"),
                       "--num-classes", "2", "--ignore-index", "255", "--fusion", "majority", "--out",
                       str(d / "o.png"), "--checkpoint", str(tiny_checkpoint)]) == 2
    _one_error(capsys, "labels outside 0..1")
    assert not (d / "out").exists() and not (d / "o.png").exists()


def test_label_merge_reaches_the_merge_and_is_refused_where_it_does_not_apply(label_folder, tiny_checkpoint,
                                                                               capsys, monkeypatch):
    import sam_sr.inference.labels as labels_module
    from sam_sr.inference.labels import LABEL_MERGES
    d = label_folder
    seen = []
    real = labels_module.merge_class_probabilities

    def spy(*a, **k):
        seen.append(a[5:7])                       # switch_margin, open_margin
        return real(*a, **k)
    monkeypatch.setattr(labels_module, "merge_class_probabilities", spy)
    one = ["--image", str(d / "images" / "0.png"), "--labels", str(d / "labels" / "0.png"), "--num-classes", "3",
           "--ignore-index", "255", "--checkpoint", str(tiny_checkpoint)]
    for name in ("argmax", "uniform", None):
        out = d / f"o_{name}.png"
        assert infer_main(one + ["--out", str(out)] + (["--label-merge", name] if name else [])) == 0
        merge = LABEL_MERGES[name or "thin-aware"]
        assert seen[-1] == (merge["switch_margin"], merge["open_margin"]) and out.is_file()
    assert LABEL_MERGES["argmax"] == {"switch_margin": 0.0, "open_margin": None}
    assert main(["infer", "--images", str(d / "images"), "--labels", str(d / "labels"), "--num-classes", "3",
                 "--ignore-index", "255", "--out", str(d / "out"), "--checkpoint", str(tiny_checkpoint),
                 "--label-merge", "uniform"]) == 0
    assert seen[-1] == (LABEL_MERGES["uniform"]["switch_margin"], None)
    capsys.readouterr()
    assert infer_main(one + ["--out", str(d / "x.png"), "--fusion", "majority", "--label-merge", "argmax"]) == 2
    _one_error(capsys, "--label-merge is for --fusion refine")
    img, mask = d / "images" / "0.png", d / "gt" / "0.png"
    assert infer_main([str(img), str(mask), "--out", str(d / "y.png"), "--label-merge", "argmax",
                       "--checkpoint", str(tiny_checkpoint)]) == 2
    _one_error(capsys, "--label-merge cannot be used without --labels")
    assert not (d / "x.png").exists() and not (d / "y.png").exists()


def test_ctrl_c_in_a_folder_run_is_one_line_and_130(folder, tiny_checkpoint, capsys, monkeypatch):
    from sam_sr import Refiner
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(Refiner, "predict", interrupted)
    rc = main(["infer", "--images", str(folder / "images"), "--masks", str(folder / "masks"), "--out",
               str(folder / "out"), "--checkpoint", str(tiny_checkpoint)])
    assert rc == 130 and calls == [1] and capsys.readouterr().err.strip().endswith("interrupted")
    assert not (folder / "out").exists() or not list((folder / "out").iterdir())


def test_eval_json_is_checked_before_evaluating(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import sam_sr.evaluation.evaluate as evaluation
    for i in range(2):
        save_pair(tmp_path / "images", tmp_path / "masks", f"{i}", i)
    calls = []
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: calls.append(1) or {})
    (tmp_path / "afile").write_text("")
    rc = main(["eval", "--root", str(tmp_path), "--ids", "", "--sources", "scale_gap_x4", "--checkpoint",
                    str(tiny_checkpoint), "--json", str(tmp_path / "afile" / "r.json")])
    assert rc == 2 and calls == []
    _one_error(capsys, "is a file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_eval_json_in_a_read_only_folder_is_refused_before_evaluating(tmp_path, tiny_checkpoint, capsys):
    for i in range(2):
        save_pair(tmp_path / "images", tmp_path / "masks", f"{i}", i)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        rc = main(["eval", "--root", str(tmp_path), "--ids", "", "--sources", "scale_gap_x4", "--checkpoint",
                        str(tiny_checkpoint), "--json", str(tmp_path / "ro" / "r.json")])
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert rc == 2
    _one_error(capsys, "not writable")


def test_sam_cache_that_is_a_file_is_one_error(single, tiny_checkpoint, capsys):
    (single / "cache").write_text("")
    rc = infer_main(["--image", str(single / "photo.png"), "--mask", str(single / "mask.png"), "--out",
                     str(single / "o.png"), "--checkpoint", str(tiny_checkpoint), "--sam-cache",
                     str(single / "cache"), "--sam-checkpoint", str(single / "sam.pt")])
    assert rc == 2
    _one_error(capsys, "--sam-cache")
