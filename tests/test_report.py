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
from sam_sr.reporting.report import (
    COARSE,
    REFINED,
    WINDOW,
    ReportRow,
    coco_report,
    folder_report,
    render_row,
    write_report,
)
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
    overview, zoom = render_row(image, [coarse], [refined], None, thumb=100, zoom=16, zoom_px=64)
    assert overview.shape == (50, 100, 3)                     # fitted in 100 px
    assert zoom.shape[:2] == (64, 64)
    green = np.all(zoom == REFINED, axis=2)
    assert green.any()
    ys, xs = np.nonzero(green)
    # the zoom window holds the right edges (x 179..183 in the photo), not the unchanged left side
    assert xs.max() > 32
    _, none = render_row(image, [coarse], [coarse], None)
    assert none is None


def test_contours_lie_on_the_masks_own_edge_and_changes_are_tinted():
    """The refined contour is drawn on the refined mask's outermost pixels (inside it, never outside),
    and added pixels are tinted on the whole photo."""
    image = np.full((60, 80, 3), 100, np.uint8)
    coarse, refined = _square(60, 80, 10, 10, 50, 40), _square(60, 80, 10, 10, 50, 60)
    overview, _ = render_row(image, [coarse], [refined], None, thumb=80)
    green = np.all(overview == REFINED, axis=2)
    assert green.any() and not (green & ~refined).any()                 # never outside the mask
    drawn = green | np.all(overview == WINDOW, axis=2)                  # the zoom box may cross it
    assert drawn[10, 10:60].all() and drawn[49, 10:60].all() and drawn[10:50, 59].all()   # its edge
    tinted = (overview != 100).any(axis=2) & ~green & ~np.all(overview == COARSE, axis=2)
    assert tinted[20:40, 45:55].all() and not tinted[20:40, 65:75].any()  # the added band only
    assert tuple(overview[30, 50]) != tuple(overview[30, 70])


def test_a_soft_coarse_mask_is_outlined_and_measured_at_one_half():
    image = np.zeros((60, 80, 3), np.uint8)
    soft = np.full((60, 80), 0.3, np.float32)                 # background at 0.3: below one half
    soft[10:50, 10:40] = 0.9
    refined = _square(60, 80, 10, 10, 50, 40)
    overview, zoom = render_row(image, [soft], [refined], None, thumb=80)
    assert zoom is None                                       # the same mask at 0.5: nothing changed
    red = np.all(overview == COARSE, axis=2)
    assert not red[:5].any() and not red[:, :5].any()         # no contour around the whole photo


def test_the_zoom_window_frames_the_largest_change():
    """A filled hole (a wheel's interior, 50 px across) is framed whole, not as a corner of it."""
    from sam_sr.reporting.visualize import change_window
    changed = np.zeros((400, 600), bool)
    changed[100:150, 300:350] = True                          # the filled interior
    changed[10:12, 10:12] = True                              # a speck elsewhere
    y0, x0, y1, x1 = change_window(changed, 48)
    assert y0 <= 100 and y1 >= 150 and x0 <= 300 and x1 >= 350 and (y1 - y0) <= 80


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


class DecidingRefiner(DilatingRefiner):
    """DilatingRefiner whose info says, as the default's does, how many region changes its decision
    saw and took: the first photo it refines took 1 of 2, the others none of 1."""

    calls = 0

    def predict(self, image, mask, mask_threshold=None):
        r = super().predict(image, mask, mask_threshold)
        self.calls += 1
        taken = int(self.calls == 1)
        return type(r)(r.mask, r.soft, r.coarse, {"sam": {"changes": 2 if taken else 1, "taken": taken}})


def test_the_folder_summary_and_report_say_where_region_changes_were_taken(tmp_path):
    for i in range(3):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", i)
    jobs = plan_mask_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
    s = run_mask_jobs(DecidingRefiner(), jobs, progress=False, verbose=False)
    assert [it["regions"] for it in s["items"]] == [{"proposed": 2, "taken": 1}] + [{"proposed": 1, "taken": 0}] * 2
    page = folder_report(s, tmp_path / "report.html", progress=False).read_text()
    assert page.count("region changes taken: 1 of 2 proposed") == 1
    assert page.count("region changes taken: 0 of 1 proposed") == 2
    assert "1 photos had region changes taken" in page and "--regions keep" in page
    plain = run_mask_jobs(DilatingRefiner(), plan_mask_folder(tmp_path / "images", tmp_path / "masks",
                                                              tmp_path / "out2"), progress=False, verbose=False)
    assert all("regions" not in it for it in plain["items"])        # no decision, no claim
    page = folder_report(plain, tmp_path / "report2.html", progress=False).read_text()
    assert "region changes" not in page
