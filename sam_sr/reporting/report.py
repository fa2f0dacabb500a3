"""HTML reports of folder and COCO runs: what refinement changed, photo by photo, most changed first.

Each photo gets two pictures: the whole photo, tinted where refinement added pixels (cyan) or
removed them (magenta), with contours on each mask's own edge (ground truth blue, drawn first, then
coarse red, then refined green on top: where refined and coarse agree only green shows); and a zoom on
the largest connected change, its window sized to that change (the yellow box on the photo). Soft
masks are outlined and measured at 0.5. Photos are sorted by how much the mask changed:

- binary folder runs: 1 - IoU(coarse, refined);
- label maps: the fraction of pixels whose label changed;
- COCO runs: the largest 1 - IoU(before, after) over the photo's instances.

With ground truth each photo shows IoU and mBA (label maps: mIoU and multi-class mBA; COCO: the means
over the photo's instances paired with ground truth, see :func:`sam_sr.evaluation.coco.evaluate_coco`) before
and after. The pictures are JPEG files in ``<report name>_files/`` next to the HTML file, linked
relatively (move the two together); at most ``max_rows`` photos are drawn (the most changed), so a
report of a large run stays small (about 50 KB per photo).
"""
from __future__ import annotations

import html
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..errors import SamSrError
from ..imaging.outputs import check_output_path
from ..imaging.read import read_image, read_label_map, read_mask
from ..imaging.write import atomic_write_bytes
from .visualize import ADDED, REMOVED, binary, change_window, draw_contours, tint_changes

COARSE, REFINED, GT, WINDOW = (255, 40, 40), (40, 230, 40), (60, 140, 255), (255, 220, 0)


@dataclass
class ReportRow:
    """One photo of a report.

    ``load()`` returns ``(image uint8 (H, W, 3), coarse masks, refined masks, ground-truth masks or
    None)``, each a list of (H, W) bool masks (one per instance or class); ``metrics`` maps a name
    (e.g. ``"IoU"``) to (coarse, refined) values in [0, 1] or None.
    """

    name: str
    change: float
    load: Callable[[], tuple[np.ndarray, list, list, list | None]]
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    info: str = ""


def _fit(image: np.ndarray, masks: Sequence[np.ndarray], max_side: int):
    """The image resized (area) so that its longer side is at most ``max_side`` (upscaled, nearest, when
    ``upscale`` would make it larger), and the masks resized with it and thresholded at 0.5."""
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s == 1.0:
        return image, [binary(m) for m in masks], 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
    small = cv2.resize(image, size, interpolation=interp)
    return small, [cv2.resize(binary(m).astype(np.float32), size, interpolation=interp) >= 0.5
                   for m in masks], s


def render_row(image: np.ndarray, coarse: list, refined: list, gt: list | None, thumb: int = 480,
               zoom: int = 48, zoom_px: int = 320) -> tuple[np.ndarray, np.ndarray | None]:
    """The two pictures of a report row, uint8 RGB.

    - the photo fitted in ``thumb`` x ``thumb`` pixels, tinted where refinement added
      (:data:`~sam_sr.reporting.visualize.ADDED`) or removed (:data:`~sam_sr.reporting.visualize.REMOVED`)
      pixels, with the contours of ground truth, coarse and refined masks on their own edges, and the
      zoom window as a yellow box;
    - the zoom: the window around the largest connected change
      (:func:`~sam_sr.reporting.visualize.change_window`, at least ``zoom`` px square), tinted and
      outlined the same way and drawn ``zoom_px`` px on its longer side; None when nothing changed.

    Masks are read by :func:`~sam_sr.reporting.visualize.binary` (soft masks at 0.5).
    """
    changed = np.zeros(image.shape[:2], bool)
    for c, r in zip(coarse, refined):
        changed |= binary(c) != binary(r)
    layers_all = [*(gt or []), *coarse, *refined]
    n_gt, n_c = len(gt or []), len(coarse)

    def picture(img, masks):
        tinted = tint_changes(img, masks[n_gt:n_gt + n_c], masks[n_gt + n_c:])
        layers = [(masks[:n_gt], GT), (masks[n_gt:n_gt + n_c], COARSE), (masks[n_gt + n_c:], REFINED)]
        return draw_contours(tinted, layers, 1)

    small, masks, s = _fit(image, layers_all, min(thumb, max(image.shape[:2])))
    overview = picture(small, masks)
    if not changed.any():
        return overview, None
    y0, x0, y1, x1 = change_window(changed, zoom)
    cv2.rectangle(overview, (int(x0 * s), int(y0 * s)), (int(np.ceil(x1 * s)) - 1, int(np.ceil(y1 * s)) - 1),
                  WINDOW, 1)
    crop = [np.asarray(m)[y0:y1, x0:x1] for m in layers_all]
    big, masks, _ = _fit(np.ascontiguousarray(image[y0:y1, x0:x1]), crop, zoom_px)
    return overview, picture(big, masks)


def _jpeg(arr: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SamSrError("cannot encode a report picture")
    return buf.tobytes()


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _metric_rows(metrics: dict[str, tuple[float | None, float | None]]) -> str:
    out = []
    for name, (a, b) in metrics.items():
        if a is None and b is None:
            continue
        d = None if a is None or b is None else b - a
        cls = "" if d is None or abs(d) < 5e-5 else ("up" if d > 0 else "down")
        delta = "" if d is None else f"{100 * d:+.2f}"
        out.append(f"<tr><td>{html.escape(name)}</td><td>{_pct(a)}</td><td>{_pct(b)}</td>"
                   f"<td class='{cls}'>{delta}</td></tr>")
    if not out:
        return ""
    return ("<table class='m'><tr><th></th><th>coarse</th><th>refined</th><th>gain</th></tr>"
            + "".join(out) + "</table>")


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;background:#f4f5f7;color:#1d1f23}
h1{font-size:22px;margin:0 0 6px} .sub{color:#555;margin:2px 0;font-size:14px}
.legend{margin:10px 0 18px;font-size:14px} .legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:22px;height:4px;vertical-align:middle;margin-right:6px;border-radius:2px}
.card{display:flex;gap:16px;align-items:flex-start;background:#fff;border-radius:8px;padding:12px;
margin-bottom:12px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.pics{display:flex;gap:8px;align-items:flex-start} .pics img{display:block;border-radius:4px;max-width:100%}
.meta{flex:0 0 240px;width:240px;font-size:14px} .rank{color:#888;font-size:13px} .name{font-weight:600;font-size:16px;
word-break:break-all} .chg{margin:4px 0 8px} .chg b{font-size:18px}
.what{color:#888;font-size:12px} .bar{height:6px;background:#e3e5e8;border-radius:3px;margin:2px 0 10px;width:200px}
.bar div{height:6px;background:#e0572a;border-radius:3px}
table.m{border-collapse:collapse;font-size:13px} table.m td,table.m th{padding:2px 8px;text-align:right}
table.m td:first-child{text-align:left;color:#555} table.m th{color:#777;font-weight:500}
.up{color:#18864b;font-weight:600} .down{color:#c62828;font-weight:600}
.info{color:#666;font-size:13px;margin-top:6px} .nz{color:#777;font-size:13px;width:256px;padding-top:8px}
.failed{background:#fff;border-radius:8px;padding:12px;font-size:13px} .failed li{margin:3px 0}
"""


def check_report_path(html_path: str | os.PathLike, force: bool = False) -> Path:
    """Check a report's paths before a run: the HTML file (``.html`` or ``.htm``) and its picture
    folder ``<stem>_files/``.

    Raises:
        SamSrError: another extension; either exists (without ``force``); the folder is a file; an
            unwritable location.
    """
    out = Path(html_path)
    if out.suffix.lower() not in (".html", ".htm"):
        raise SamSrError(f"report {out}: name it .html")
    check_output_path(out, force)
    files = out.with_name(f"{out.stem}_files")
    if files.exists() and not (force and files.is_dir()):
        raise SamSrError(f"{files} exists" + (" (use --force to overwrite)" if files.is_dir() else " and is a file"))
    return out


def write_report(rows: Sequence[ReportRow], html_path: str | os.PathLike, title: str,
                 header: Sequence[str] = (), failed: Sequence[tuple[str, str]] = (),
                 force: bool = False, max_rows: int = 100, thumb: int = 480, zoom: int = 48,
                 zoom_px: int = 320, progress: bool = True, change_label: str = "") -> Path:
    """Write an HTML report of ``rows`` (sorted here by ``change``, largest first; the first
    ``max_rows`` drawn) with its pictures in ``<stem>_files/``.

    Args:
        header: lines under the title (e.g. the run's summary).
        failed: (item, error) pairs listed at the end.
        change_label: what ``change`` measures, shown next to it (e.g. "1 - IoU").

    Returns:
        The HTML path.

    Raises:
        SamSrError: see :func:`check_report_path`; ``max_rows`` < 1. A row whose files cannot be read is listed as failed instead.
    """
    out = check_report_path(html_path, force)
    if max_rows < 1:
        raise SamSrError(f"max_rows must be >= 1, got {max_rows}")
    files = out.with_name(f"{out.stem}_files")
    ordered = sorted(rows, key=lambda r: (-r.change, r.name))
    shown, failed = ordered[:max_rows], list(failed)
    top = max([r.change for r in shown] + [1e-9])          # bars are relative to the most changed photo
    cards = []
    for rank, row in enumerate(tqdm(shown, desc="report", unit="img", disable=not progress,
                                    dynamic_ncols=True), 1):
        try:
            image, coarse, refined, gt = row.load()
            overview, zoomed = render_row(image, coarse, refined, gt, thumb, zoom, zoom_px)
        except SamSrError as exc:
            failed.append((row.name, f"report: {exc}"))
            continue
        stem = f"{rank:04d}"
        pics = []
        for suffix, pic in (("", overview), ("_zoom", zoomed)):
            if pic is None:
                pics.append("<div class='nz'>no pixel changed</div>")
                continue
            name = f"{stem}{suffix}.jpg"
            atomic_write_bytes(files / name, _jpeg(pic))
            rel = urllib.parse.quote(f"{files.name}/{name}")
            alt = html.escape(f"{row.name} {'zoom' if suffix else 'overview'}")
            pics.append(f"<img src='{rel}' width='{pic.shape[1]}' height='{pic.shape[0]}' alt='{alt}'>")
        width = max(0.0, min(1.0, row.change / top))
        cards.append(
            f"<div class='card'><div class='meta'><div class='rank'>#{rank}</div>"
            f"<div class='name'>{html.escape(row.name)}</div>"
            f"<div class='chg'>changed <b>{100 * row.change:.2f}%</b> <span class='what'>{change_label}</span></div>"
            f"<div class='bar'><div style='width:{200 * width:.0f}px'></div></div>"
            f"{_metric_rows(row.metrics)}"
            + (f"<div class='info'>{html.escape(row.info)}</div>" if row.info else "")
            + f"</div><div class='pics'>{''.join(pics)}</div></div>")
    legend = (f"<div class='legend'><span><i class='sw' style='background:rgb{COARSE}'></i>coarse</span>"
              f"<span><i class='sw' style='background:rgb{REFINED}'></i>refined</span>"
              f"<span><i class='sw' style='background:rgb{GT}'></i>ground truth</span>"
              f"<span><i class='sw' style='background:rgb{WINDOW}'></i>zoom window</span>"
              f"<span><i class='sw' style='background:rgb{ADDED};height:10px'></i>added by refinement</span>"
              f"<span><i class='sw' style='background:rgb{REMOVED};height:10px'></i>removed by refinement</span>"
              f"</div>")
    more = len(ordered) - len(shown)
    lines = list(header) + [f"{len(ordered)} photos, sorted by how much the mask changed"
                            + (f" ({change_label})" if change_label else "")
                            + (f"; the {len(shown)} most changed are shown ({more} not drawn)" if more else ""),
                            "left: the photo, tinted where refinement added or removed pixels; right: the "
                            "largest change, zoomed (the yellow box on the photo)"]
    fail_html = ""
    if failed:
        items = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(e)}</li>" for n, e in failed)
        fail_html = f"<h2>Failed ({len(failed)})</h2><ul class='failed'>{items}</ul>"
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>" + "".join(f"<p class='sub'>{html.escape(x)}</p>" for x in lines)
            + legend + "".join(cards) + fail_html + "</body></html>\n")
    atomic_write_bytes(out, page.encode())
    return out


def _mean_gain(rows: Sequence[ReportRow], key: str) -> str | None:
    vals = [r.metrics[key] for r in rows if key in r.metrics and None not in r.metrics[key]]
    if not vals:
        return None
    a, b = np.mean([v[0] for v in vals]), np.mean([v[1] for v in vals])
    return f"{key} {100 * a:.2f} -> {100 * b:.2f} ({100 * (b - a):+.2f}) over {len(vals)} photos"


def folder_report(summary: dict[str, Any], html_path: str | os.PathLike, force: bool = False,
                  max_rows: int = 100, title: str | None = None, progress: bool = True) -> Path:
    """The report of a folder run, from its summary (:mod:`sam_sr.batch.folders`: ``kind`` "masks" or
    "labels"); photos, coarse inputs, outputs and ground truth are read from the paths it names.

    Raises:
        SamSrError: see :func:`write_report`; a summary of another kind.
    """
    from ..inference.predictor import prepare_mask

    kind = summary.get("kind")
    if kind not in ("masks", "labels"):
        raise SamSrError(f"folder_report needs a folder run's summary, got kind {kind!r}")
    ignore = summary.get("ignore_index")

    def loader(it):
        def load():
            image = read_image(it["image"])
            hw = image.shape[:2]
            if kind == "masks":
                coarse = [prepare_mask(read_mask(it["coarse"]), hw)]
                refined = [read_mask(it["out"]) >= 0.5]
                gt = [read_mask(it["gt"]) >= 0.5] if it.get("gt") else None
                return image, coarse, refined, gt
            c, _ = read_label_map(it["coarse"])
            r, _ = read_label_map(it["out"])
            classes = [k for k in np.union1d(np.unique(c), np.unique(r)) if k != ignore]
            gt = None
            if it.get("gt"):
                g, _ = read_label_map(it["gt"])
                gt = [g == k for k in np.unique(g) if k != ignore]
            return image, [c == k for k in classes], [r == k for k in classes], gt
        return load

    rows, failed = [], []
    names = ("IoU", "mBA") if kind == "masks" else ("mIoU", "mBA")
    for it in summary["items"]:
        if it["status"] != "ok":
            failed.append((Path(it["image"]).name, it["error"] or it["status"]))
            continue
        metrics = {}
        if it.get("iou_coarse") is not None:
            metrics = {names[0]: (it["iou_coarse"], it["iou_refined"]),
                       names[1]: (it["mba_coarse"], it["mba_refined"])}
        regions = it.get("regions")
        info = (f"region changes taken: {regions['taken']} of {regions['proposed']} proposed"
                if regions else "")
        rows.append(ReportRow(Path(it["image"]).name, float(it["change"]), loader(it), metrics, info))
    header = [f"{'binary masks' if kind == 'masks' else 'label maps'}: refined {summary['ok']} of "
              f"{summary['total']} photos" + (f", {summary['failed']} failed" if summary["failed"] else "")]
    changed = [it for it in summary["items"] if it["status"] == "ok" and (it.get("regions") or {}).get("taken")]
    if changed:
        header.append(f"{len(changed)} photos had region changes taken (parts added or removed, not only "
                      f"the boundary redrawn); where their coarse regions were right, refine them again "
                      f"with --regions keep")
    header += [g for g in (_mean_gain(rows, names[0]), _mean_gain(rows, names[1])) if g]
    return write_report(rows, html_path, title or "sam-sr refinement report", header, failed, force,
                        max_rows, progress=progress,
                        change_label="1 - IoU" if kind == "masks" else "pixels relabelled")


def coco_report(before: str | os.PathLike | list, after: str | os.PathLike | list,
                images: dict[int, dict[str, Any]], html_path: str | os.PathLike,
                gt: str | os.PathLike | dict | None = None, summary: dict[str, Any] | None = None,
                evaluation: dict[str, Any] | None = None, force: bool = False, max_rows: int = 100,
                title: str | None = None, progress: bool = True) -> Path:
    """The report of a COCO run: one row per photo with all its instances (before red, after green,
    ground-truth instances blue when ``gt`` is given).

    Args:
        before, after: the results lists (or files) before and after refinement, same order.
        images: :func:`sam_sr.data.coco.image_table`.
        summary: :func:`sam_sr.batch.coco.run_coco_jobs`' summary (its per-instance ``change`` and
            failures); without it, the change is computed here.
        evaluation: :func:`sam_sr.evaluation.coco.evaluate_coco`'s result, for per-photo IoU and mBA.

    Raises:
        SamSrError: see :func:`write_report`; lists of different lengths.
    """
    from ..data.coco import decode_segmentation, load_results
    from ..evaluation.coco import ground_truth

    b, a = load_results(before), load_results(after)
    if len(a) != len(b):
        raise SamSrError(f"before ({len(b)}) and after ({len(a)}) differ in length")
    status = {it["index"]: it for it in (summary or {}).get("items", [])}
    by_image: dict[int, list[int]] = {}
    for k, it in enumerate(b):
        if isinstance(it, dict) and it.get("image_id") in images and status.get(k, {}).get("status", "ok") != "failed":
            by_image.setdefault(it["image_id"], []).append(k)
    gt_by: dict[int, list] = {}
    if gt is not None:
        for ann in ground_truth(gt)["annotations"]:
            if not ann.get("iscrowd"):
                gt_by.setdefault(ann.get("image_id"), []).append(ann["segmentation"])
    per_image = {int(k): v for k, v in ((evaluation or {}).get("per_image") or {}).items()}

    def masks(iid, hw):
        bm, am = [], []
        for k in by_image[iid]:
            m0 = decode_segmentation(b[k]["segmentation"], *hw)
            if m0.any():
                bm.append(m0)
                am.append(decode_segmentation(a[k]["segmentation"], *hw))
        return bm, am

    def loader(iid):
        def load():
            image = read_image(images[iid]["path"])
            bm, am = masks(iid, image.shape[:2])
            g = [decode_segmentation(s, *image.shape[:2]) for s in gt_by.get(iid, [])] if gt is not None else None
            return image, bm, am, g
        return load

    rows = []
    for iid, idx in by_image.items():
        changes = [status[k]["change"] for k in idx if status.get(k, {}).get("change") is not None]
        if not status:
            ref = images[iid]
            try:
                hw = (ref["height"], ref["width"]) if ref["height"] else read_image(ref["path"]).shape[:2]
                bm, am = masks(iid, hw)
            except SamSrError:
                continue
            changes = [1 - np.logical_and(x, y).sum() / max(1, np.logical_or(x, y).sum()) for x, y in zip(bm, am)]
        pi = per_image.get(iid, {})
        metrics = {}
        if pi:
            metrics = {"IoU": (pi.get("iou_coarse"), pi.get("iou_refined")),
                       "mBA": (pi.get("mba_coarse"), pi.get("mba_refined"))}
        info = f"image {iid}: {len(idx)} instance{'s' if len(idx) != 1 else ''}" + \
            (f", {pi['n']} paired with ground truth" if pi else "")
        rows.append(ReportRow(Path(images[iid]["path"]).name, float(max(changes, default=0.0)), loader(iid),
                              metrics, info))
    failed = [(f"instance {it['index']} (image {it['image_id']})", it["error"])
              for it in (summary or {}).get("items", []) if it["status"] == "failed"]
    header = []
    if summary:
        header.append(f"COCO instances: refined {summary['ok']} of {summary['total']} on "
                      f"{summary['images']} photos; {summary['empty']} empty, {summary['failed']} failed")
    if evaluation:
        c, r = evaluation["coarse"], evaluation.get("refined")
        if r:
            header.append(f"mask AP {c['AP']:.2f} -> {r['AP']:.2f}, AP50 {c['AP50']:.2f} -> {r['AP50']:.2f}, "
                          f"AP75 {c['AP75']:.2f} -> {r['AP75']:.2f}; mBA over {evaluation['pairs']} "
                          f"pairs {c['mba'] or 0:.2f} -> {r['mba'] or 0:.2f}")
    header.append("per photo: the largest change (1 - IoU before/after) over its instances; IoU and mBA "
                  "are means over its instances paired with ground truth")
    return write_report(rows, html_path, title or "sam-sr COCO refinement report", header, failed, force,
                        max_rows, progress=progress, change_label="max 1 - IoU over instances")
