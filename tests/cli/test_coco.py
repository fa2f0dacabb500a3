"""``sam-sr coco``: refine a COCO results file end to end (ids, categories and scores kept; bad
instances reported and kept; --eval, --summary, --report) and its refusals."""
import json

import numpy as np
import pytest
from PIL import Image

from sam_sr.cli import main
from sam_sr.data.coco import decode_segmentation, encode_mask
from tests.conftest import disk_photo


@pytest.fixture
def coco_set(tmp_path):
    (tmp_path / "images").mkdir()
    images, anns, results = [], [], []
    for i in (1, 2):
        img, mask = disk_photo(48, 64, seed=i)
        Image.fromarray(img).save(tmp_path / "images" / f"{i:03d}.png")
        images.append({"id": i, "file_name": f"{i:03d}.png", "height": 48, "width": 64})
        anns.append({"id": i, "image_id": i, "category_id": 3, "segmentation": encode_mask(mask > 0), "iscrowd": 0})
        shifted = np.roll(mask > 0, 2, axis=1)
        results.append({"image_id": i, "category_id": 3, "score": 0.5 + i / 10, "segmentation": encode_mask(shifted),
                        "bbox": [0, 0, 1, 1], "extra": f"kept {i}"})
    results.append({"image_id": 2, "category_id": 3, "score": 0.1,
                    "segmentation": {"size": [48, 64], "counts": "0P2"}})          # a bad RLE
    results.append({"image_id": 1, "category_id": 3, "score": 0.2,
                    "segmentation": [[5, 5, 20, 5, 20, 20, 5, 20]]})               # a polygon
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                   "categories": [{"id": 3, "name": "thing"}]}))
    return tmp_path


def test_coco_run_refines_keeps_everything_else_and_scores(coco_set, tiny_checkpoint, capsys):
    d = coco_set
    rc = main(["coco", "--results", str(d / "results.json"), "--annotations", str(d / "ann.json"), "--images",
               str(d / "images"), "--out", str(d / "out.json"), "--eval", "--eval-json", str(d / "ev.json"),
               "--summary", str(d / "s.json"), "--report", str(d / "r.html"), "--checkpoint", str(tiny_checkpoint)])
    captured = capsys.readouterr()
    assert rc == 1                                                    # the bad RLE failed alone
    assert "refined 3 of 4 instances on 2 images; 1 failed" in captured.out
    assert "error: instance 2 (image 2): invalid RLE" in captured.err
    assert "| coarse |" in captured.out and "| refined |" in captured.out
    before = json.loads((d / "results.json").read_text())
    after = json.loads((d / "out.json").read_text())
    assert len(after) == len(before)
    for b, a in zip(before, after):
        assert {k: v for k, v in a.items() if k != "segmentation"} == {k: v for k, v in b.items() if k != "segmentation"}
    assert after[2] == before[2]                                      # failed: kept unchanged
    assert isinstance(after[3]["segmentation"]["counts"], str)        # polygon in, RLE out
    assert decode_segmentation(after[0]["segmentation"], 48, 64).shape == (48, 64)
    ev = json.loads((d / "ev.json").read_text())
    assert ev["pairs"] >= 2 and 0 <= ev["refined"]["AP"] <= 100
    s = json.loads((d / "s.json").read_text())
    assert (s["total"], s["ok"], s["failed"]) == (4, 3, 1) and "segmentations" not in s
    assert (d / "r.html").is_file()


def test_photos_by_id_from_an_image_folder_alone(coco_set, tiny_checkpoint):
    d = coco_set
    good = [r for r in json.loads((d / "results.json").read_text()) if r["score"] != 0.1]
    (d / "good.json").write_text(json.dumps(good))
    assert main(["coco", "--results", str(d / "good.json"), "--images", str(d / "images"), "--out",
                      str(d / "out.json"), "--checkpoint", str(tiny_checkpoint)]) == 0
    assert len(json.loads((d / "out.json").read_text())) == 3


@pytest.mark.parametrize("case,text", [
    ("out_is_results", "is the input --results"),
    ("out_is_annotations", "is the input --annotations"),
    ("eval_without_annotations", "--eval needs --annotations"),
    ("no_photos", "give --images DIR, --annotations"),
    ("out_not_json", "name it .json"),
    ("out_exists", "output exists"),
    ("results_missing", "not found"),
    ("annotations_without_ground_truth", "needs 'images', 'annotations' and 'categories'"),
])
def test_coco_refusals_are_one_error_and_write_nothing(coco_set, tiny_checkpoint, capsys, case, text):
    d = coco_set
    args = {"--results": d / "results.json", "--annotations": d / "ann.json", "--images": d / "images",
            "--out": d / "out.json"}
    extra = []
    if case == "out_is_results":
        args["--out"] = d / "results.json"
    elif case == "out_is_annotations":
        args["--out"] = d / "ann.json"
    elif case == "eval_without_annotations":
        del args["--annotations"]
        extra = ["--eval"]
    elif case == "no_photos":
        del args["--annotations"], args["--images"]
    elif case == "out_not_json":
        args["--out"] = d / "out.txt"
    elif case == "out_exists":
        (d / "out.json").write_text("mine")
    elif case == "results_missing":
        args["--results"] = d / "nope.json"
    elif case == "annotations_without_ground_truth":
        (d / "table.json").write_text(json.dumps({"images": json.loads((d / "ann.json").read_text())["images"]}))
        args["--annotations"] = d / "table.json"
        extra = ["--eval"]
    inputs = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    argv = [x for k, v in args.items() for x in (k, str(v))] + extra + ["--checkpoint", str(tiny_checkpoint)]
    assert main(["coco"] + argv + (["--force"] if case.startswith("out_is") else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and text in err, err
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == inputs
