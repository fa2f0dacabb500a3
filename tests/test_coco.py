"""COCO instance refinement and evaluation on hand-made instances (and sod, when present)."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from sam_sr import SamSrError
from sam_sr.batch.coco import context_box, refine_coco, refine_instance
from sam_sr.data.coco import (
    coco_from_masks,
    components,
    decode_segmentation,
    encode_mask,
    image_table,
    load_results,
)
from sam_sr.evaluation.coco import evaluate_coco
from tests.conftest import SHARED_DATA, needs_shared


class DilatingRefiner:
    """Stands in for the refiner: grows the coarse mask by one pixel and records what it was given."""

    def __init__(self):
        self.calls = []

    def refine(self, image, mask):
        self.calls.append((image.shape, mask.shape))
        return cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) * 255


def square(h, w, y0, x0, y1, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# ------------------------------------------------------------------------------- masks and crops


def test_rle_and_polygon_decoding():
    m = square(30, 40, 5, 10, 15, 30)
    rle = encode_mask(m)
    assert isinstance(rle["counts"], str) and rle["size"] == [30, 40]
    assert np.array_equal(decode_segmentation(rle, 30, 40), m)
    # uncompressed RLE: column-major runs starting with background
    flat = m.flatten(order="F").astype(int)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    assert np.array_equal(decode_segmentation({"size": [30, 40], "counts": runs}, 30, 40), m)
    poly = [[10, 5, 30, 5, 30, 15, 10, 15]]          # x, y corners of the same square
    got = decode_segmentation(poly, 30, 40)
    assert abs(int(got.sum()) - int(m.sum())) <= 40 and (got & m).sum() >= 0.9 * m.sum()


@pytest.mark.parametrize("seg,match", [
    ({"size": [10, 40], "counts": "abc"}, "differs from the photo"),
    ({"size": [30, 40], "counts": "0P2"}, "runs cover 64 pixels"),
    ({"size": [30, 40], "counts": "0\x7f"}, "invalid RLE"),
    ({"size": [30, 40], "counts": [5, 3]}, "summing to"),
    ({"counts": "x"}, "size"),
    ([[1, 2, 3, 4]], "at least 3 points"),
    ([[0, 0, 10, "a", 10, 10]], "finite coordinates"),
    ("polygon", "RLE dict or a list"),
])
def test_bad_segmentations_are_one_clear_error(seg, match):
    with pytest.raises(SamSrError, match=match):
        decode_segmentation(seg, 30, 40)


def test_context_box_pads_by_the_longer_side_and_clips():
    m = square(200, 300, 50, 100, 70, 140)              # box 20 x 40 (h x w)
    assert context_box(m, pad=0.5, min_context=8) == (30, 80, 90, 160)     # 0.5 * 40 = 20 px
    assert context_box(m, pad=0.1, min_context=32) == (18, 68, 102, 172)   # at least 32 px
    assert context_box(square(200, 300, 0, 0, 10, 10), 0.5, 32) == (0, 0, 42, 42)
    with pytest.raises(SamSrError, match="empty"):
        context_box(np.zeros((5, 5), bool))


def test_refine_instance_works_in_the_crop_at_full_resolution():
    image = np.zeros((200, 300, 3), np.uint8)
    m = square(200, 300, 50, 100, 70, 140)
    r = DilatingRefiner()
    out = refine_instance(r, image, m, pad=0.5, min_context=8)
    assert r.calls == [((60, 80, 3), (60, 80))]      # the crop of context_box, not resized
    assert np.array_equal(out, square(200, 300, 49, 99, 71, 141))


# ------------------------------------------------------------------------------- refinement runs


@pytest.fixture
def coco_folder(tmp_path):
    """Two photos (ids 1 and 2) and an annotation file mapping them; 3 x 4 = 12 px squares."""
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for iid in (1, 2):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{iid:012d}.png")
    ann = {"images": [{"id": 1, "file_name": f"{1:012d}.png", "height": 60, "width": 80},
                      {"id": 2, "file_name": f"{2:012d}.png", "height": 60, "width": 80},
                      {"id": 3, "file_name": "gone.png", "height": 60, "width": 80}],
           "annotations": [], "categories": [{"id": 7, "name": "thing"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    return tmp_path


def test_refine_coco_keeps_everything_but_refined_masks_and_reports_bad_items(coco_folder, capsys):
    m1, m2 = square(60, 80, 10, 10, 20, 30), square(60, 80, 30, 40, 50, 70)
    results = [
        {"image_id": 1, "category_id": 7, "score": 0.9, "segmentation": encode_mask(m1), "bbox": [1, 2, 3, 4]},
        {"image_id": 2, "category_id": 7, "score": 0.8, "segmentation": [[40, 30, 70, 30, 70, 50, 40, 50]]},
        {"image_id": 1, "category_id": 7, "score": 0.3, "segmentation": encode_mask(np.zeros((60, 80), bool))},
        {"image_id": 3, "category_id": 7, "score": 0.5, "segmentation": encode_mask(m2)},     # photo missing
        {"image_id": 1, "category_id": 7, "score": 0.4, "segmentation": {"size": [60, 80], "counts": "0P2"}},
        {"image_id": 99, "category_id": 7, "score": 0.4, "segmentation": encode_mask(m2)},    # unknown id
        {"image_id": 2, "category_id": 7, "score": 0.7, "segmentation": encode_mask(square(30, 40, 0, 0, 5, 5))},
        "not an instance",
    ]
    table = image_table(coco_folder / "ann.json", coco_folder / "imgs")
    out, summary = refine_coco(DilatingRefiner(), results, table, pad=0.5, min_context=4, progress=False)
    assert len(out) == len(results)
    assert [s["status"] for s in summary["items"]] == ["ok", "ok", "empty", "failed", "failed", "failed",
                                                         "failed", "failed"]
    assert (summary["ok"], summary["empty"], summary["failed"], summary["total"]) == (2, 1, 5, 8)
    assert out[0]["bbox"] == [1, 2, 3, 4] and out[0]["score"] == 0.9 and out[0]["category_id"] == 7
    assert isinstance(out[0]["segmentation"]["counts"], str)
    grown = square(60, 80, 9, 9, 21, 31)
    assert np.array_equal(decode_segmentation(out[0]["segmentation"], 60, 80), grown)
    assert decode_segmentation(out[1]["segmentation"], 60, 80).sum() > m2.sum()   # polygon in, RLE out
    assert out[2:] == results[2:]                                                  # kept unchanged
    errors = {s["index"]: s["error"] for s in summary["items"] if s["error"]}
    assert "not found" in errors[3] and "invalid RLE" in errors[4] and "not in the image table" in errors[5]
    assert "differs from the photo" in errors[6] and "integer image_id" in errors[7]
    err = capsys.readouterr().err
    assert err.count("error: instance") == 5
    json.dumps(out)                                                                # JSON-able


def test_refine_coco_with_a_real_tiny_model(coco_folder, tiny_checkpoint):
    from sam_sr import Refiner
    r = Refiner.from_checkpoint(tiny_checkpoint, device="cpu")
    results = [{"image_id": 1, "category_id": 7, "score": 0.9,
                "segmentation": encode_mask(square(60, 80, 10, 10, 40, 50))}]
    out, summary = refine_coco(r, results, image_table(coco_folder / "ann.json", coco_folder / "imgs"),
                               progress=False)
    assert summary["ok"] == 1
    assert decode_segmentation(out[0]["segmentation"], 60, 80).shape == (60, 80)


def test_image_table_modes(coco_folder):
    by_ann = image_table(coco_folder / "ann.json", coco_folder / "imgs")
    assert by_ann[2]["path"] == str(coco_folder / "imgs" / f"{2:012d}.png") and by_ann[2]["height"] == 60
    alone = image_table(coco_folder / "ann.json")          # relative to the annotation file's folder
    assert alone[1]["path"] == str(coco_folder / f"{1:012d}.png")
    by_stem = image_table(images_dir=coco_folder / "imgs")     # COCO file names are the ids
    assert sorted(by_stem) == [1, 2] and by_stem[1]["height"] is None
    with pytest.raises(SamSrError, match="give an image folder"):
        image_table()
    (coco_folder / "bad.json").write_text('{"images": [{"id": "x"}]}')
    with pytest.raises(SamSrError, match="integer 'id'"):
        image_table(coco_folder / "bad.json")


@pytest.mark.parametrize("text,match", [("{", "cannot read"), ('{"a": 1}', "JSON list"),
                                        ('{"annotations": []}', "annotation file")])
def test_bad_results_files(tmp_path, text, match):
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(SamSrError, match=match):
        load_results(tmp_path / "r.json")
    with pytest.raises(SamSrError, match="not found"):
        load_results(tmp_path / "none.json")


# ------------------------------------------------------------------------------- evaluation


def _gt_file(tmp_path, masks):
    ann = {"images": [{"id": 1, "file_name": "a.png", "height": 60, "width": 80}],
           "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "segmentation": encode_mask(m),
                            "iscrowd": 0, "area": int(m.sum())} for k, m in enumerate(masks)],
           "categories": [{"id": 1, "name": "x"}]}
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(ann))
    return p


def test_evaluation_ap_and_mba_before_and_after(tmp_path):
    gt = square(60, 80, 10, 10, 40, 50)
    gt_path = _gt_file(tmp_path, [gt])
    shifted = square(60, 80, 13, 13, 43, 53)                   # IoU 27*37 / (2*1200 - 999) = 0.713
    stray = square(60, 80, 50, 60, 58, 78)                     # no overlap: a false positive
    before = [{"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": encode_mask(shifted)},
              {"image_id": 1, "category_id": 1, "score": 0.95, "segmentation": encode_mask(stray)}]
    after = [{**before[0], "segmentation": encode_mask(gt)}, before[1]]
    ev = evaluate_coco(gt_path, before, after, progress=False)
    assert ev["pairs"] == 1                                    # the stray detection has no partner
    assert ev["refined"]["mba"] == pytest.approx(100) and ev["refined"]["iou"] == pytest.approx(100)
    assert ev["coarse"]["iou"] == pytest.approx(100 * 999 / 1401)
    assert ev["coarse"]["mba"] < 60
    # the false positive outranks the true one: precision 1/2 at recall 1 -> AP 50 (101-point)
    assert ev["refined"]["AP50"] == pytest.approx(50, abs=0.6)
    assert ev["coarse"]["AP75"] == pytest.approx(0)             # IoU 0.71 < 0.75: no match
    assert ev["refined"]["AP75"] == pytest.approx(50, abs=0.6)
    assert ev["per_image"][1]["n"] == 1


def test_evaluation_refuses_unknown_images_and_mismatched_lists(tmp_path):
    gt_path = _gt_file(tmp_path, [square(60, 80, 10, 10, 40, 50)])
    det = {"image_id": 5, "category_id": 1, "score": 0.9,
           "segmentation": encode_mask(square(60, 80, 1, 1, 5, 5))}
    with pytest.raises(SamSrError, match=r"before\[0\] has image_id 5"):
        evaluate_coco(gt_path, [det])
    det["image_id"] = 1
    with pytest.raises(SamSrError, match="same list"):
        evaluate_coco(gt_path, [det], [])
    assert evaluate_coco(gt_path, [], progress=False)["coarse"]["AP"] == 0.0


# ------------------------------------------------------------------------------- building a set


def test_coco_from_masks(tmp_path):
    for d in ("images", "gt", "coarse"):
        (tmp_path / d).mkdir()
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(tmp_path / "images" / "17.jpg")
    gt = np.zeros((50, 60), np.uint8)
    gt[5:25, 5:25] = 255
    gt[40:42, 50:52] = 255                                    # 4 px speck: crowd (ignored)
    Image.fromarray(gt).save(tmp_path / "gt" / "17.png")
    coarse = np.zeros((50, 60), np.uint8)
    coarse[6:26, 6:26] = 200
    coarse[30:45, 30:45] = 127                                # below the threshold
    coarse[30:40, 5:15] = 128                                 # exactly the threshold: a detection
    Image.fromarray(coarse).save(tmp_path / "coarse" / "17.png")
    info = coco_from_masks(["17"], tmp_path / "images", tmp_path / "gt", tmp_path / "coarse",
                           tmp_path / "out", min_area=16)
    assert (info["images"], info["instances"], info["crowd"], info["detections_n"]) == (1, 1, 1, 2)
    dets = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert sorted(round(d["score"] * 255) for d in dets) == [128, 200]
    ann = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert ann["images"][0] == {"id": 17, "file_name": "17.jpg", "height": 50, "width": 60}
    with pytest.raises(SamSrError, match="output exists"):
        coco_from_masks(["17"], tmp_path / "images", tmp_path / "gt", tmp_path / "coarse", tmp_path / "out")
    ev = evaluate_coco(tmp_path / "out" / "annotations.json", tmp_path / "out" / "detections.json",
                       progress=False)
    assert ev["pairs"] == 1 and ev["coarse"]["n_detections"] == 2


def test_components_largest_first():
    m = np.zeros((10, 10), bool)
    m[0:2, 0:2] = True
    m[5:9, 5:9] = True
    m[3, 3] = True                                         # 1 px, isolated: below min_area
    comps = components(m, min_area=2)
    assert [int(c.sum()) for c in comps] == [16, 4]


@needs_shared
def test_ground_truth_as_detections_scores_100_on_sod(tmp_path):
    sod = SHARED_DATA / "sod"
    ids = [p.stem for p in sorted((sod / "images").glob("*.jpg"))[:3]]
    info = coco_from_masks(ids, sod / "images", sod / "masks", sod / "coarse" / "dss", tmp_path)
    ann = json.loads((tmp_path / "annotations.json").read_text())
    perfect = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0, "segmentation": a["segmentation"]}
               for a in ann["annotations"] if not a["iscrowd"]]
    ev = evaluate_coco(info["annotations"], perfect, progress=False)
    assert ev["coarse"]["AP"] == pytest.approx(100) and ev["coarse"]["mba"] == pytest.approx(100)
    real = evaluate_coco(info["annotations"], info["detections"], progress=False)
    assert real["coarse"]["AP"] < 100 and real["pairs"] >= 1
