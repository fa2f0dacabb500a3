"""HTML reports: rows sorted by change, pictures next to the page, failures listed."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from sam_sr import SamSrError
from sam_sr.batch.coco import refine_coco
from sam_sr.batch.folders import plan_mask_folder, run_mask_jobs
from sam_sr.data.coco import encode_mask, image_table
from sam_sr.evaluation.coco import evaluate_coco
from sam_sr.reporting.report import REFINED, ReportRow, coco_report, folder_report, render_row, write_report
from tests.conftest import save_pair
from tests.test_batch import DilatingRefiner


def _square(h, w, y0, x0, y1, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_render_row_draws_contours_and_zooms_on_the_change():
    image = np.zeros((100, 200, 3), np.uint8)
    coarse = _square(100, 200, 20, 120, 60, 180)
    refined = _square(100, 200, 20, 120, 60, 184)           # grew on the right side only
    overview, zoom = render_row(image, [coarse], [refined], None, thumb=100, zoom=16, zoom_scale=4)
    assert overview.shape == (50, 100, 3)                     # fitted in 100 px
    assert zoom.shape == (64, 64, 3)
    green = np.all(zoom == REFINED, axis=2)
    assert green.any()
    ys, xs = np.nonzero(green)
    # the zoom window holds the right edges (x 179..183 in the photo), not the unchanged left side
    assert xs.max() > 32
    _, none = render_row(image, [coarse], [coarse], None)
    assert none is None


def test_write_report_sorts_by_change_and_limits_rows(tmp_path):
    image = np.full((40, 60, 3), 90, np.uint8)

    def row(name, grow):
        c = _square(40, 60, 10, 10, 30, 30)
        r = _square(40, 60, 10, 10, 30, 30 + grow)
        return ReportRow(name, 1 - c.sum() / r.sum(), lambda: (image, [c], [r], [c]),
                         {"IoU": (1.0, float(c.sum() / r.sum()))})

    def broken():
        raise SamSrError("photo vanished")

    rows = [row("small", 1), row("big", 8), row("none", 0),
            ReportRow("gone", 0.5, broken)]
    out = write_report(rows, tmp_path / "r.html", "t", ["a header line"], [("x.jpg", "unreadable")],
                       max_rows=3, progress=False)
    page = out.read_text()
    names = re.findall(r"<div class='name'>([^<]*)</div>", page)
    assert names == ["big", "small"]                          # 'gone' failed, 'none' beyond max_rows
    assert "gone</b>: report: photo vanished" in page and "x.jpg</b>: unreadable" in page
    assert "(1 not drawn)" in page and "a header line" in page
    pics = re.findall(r"src='([^']+)'", page)
    assert pics and all((tmp_path / p).is_file() for p in pics)    # relative links that resolve
    assert all(p.startswith("r_files/") for p in pics)
    assert "class='down'" in page                             # IoU fell: shown as a loss
    with pytest.raises(SamSrError, match="exists"):
        write_report(rows, out, "t", progress=False)
    write_report(rows[:1], out, "t", force=True, progress=False)
    assert "small" in out.read_text() and "big" not in out.read_text()


def test_folder_report_from_a_run(tmp_path):
    for i in range(3):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", i)
        save_pair(tmp_path / "x", tmp_path / "gt", f"p{i}", i + 1)
    save_pair(tmp_path / "images", tmp_path / "nowhere", "lonely", 9)
    jobs = plan_mask_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "out", gt_dir=tmp_path / "gt")
    s = run_mask_jobs(DilatingRefiner(), jobs, progress=False, verbose=False)
    page = folder_report(s, tmp_path / "report.html", progress=False).read_text()
    assert len(re.findall(r"<div class='card'>", page)) == 3
    assert "lonely.jpg</b>: no coarse mask" in page
    assert "IoU" in page and "mBA" in page
    assert len(list((tmp_path / "report_files").iterdir())) == 6     # overview + zoom per photo
    assert sum(f.stat().st_size for f in (tmp_path / "report_files").iterdir()) < 200_000


def test_coco_report(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(tmp_path / "imgs" / "1.png")
    gt = _square(60, 80, 10, 10, 40, 50)
    ann = {"images": [{"id": 1, "file_name": "1.png", "height": 60, "width": 80}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_mask(gt),
                            "iscrowd": 0}],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    before = [{"image_id": 1, "category_id": 1, "score": 0.9,
               "segmentation": encode_mask(_square(60, 80, 11, 11, 39, 49))}]
    table = image_table(tmp_path / "ann.json", tmp_path / "imgs")
    after, summary = refine_coco(DilatingRefiner(), before, table, progress=False)
    ev = evaluate_coco(tmp_path / "ann.json", before, after, progress=False)
    assert ev["refined"]["iou"] == pytest.approx(100)
    page = coco_report(before, after, table, tmp_path / "c.html", gt=tmp_path / "ann.json",
                       summary=summary, evaluation=ev, progress=False).read_text()
    assert "1.png" in page and "1 instance, 1 paired with ground truth" in page
    assert "mask AP" in page and "class='up'" in page
    plain = coco_report(before, after, table, tmp_path / "d.html", progress=False).read_text()
    assert "1.png" in plain
