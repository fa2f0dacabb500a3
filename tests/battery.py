"""The battery of bad and unusual inputs (issue 15): the command line, the API and training config
overrides, each outcome classified.

Each :class:`Case` belongs to one of the issue's eight classes and states what a clean answer is:

- ``error``: one ``error: ...`` line and exit status 2 (the API: a :class:`SamSrError`), no new
  file, nothing the user had changed;
- ``partial``: a folder or COCO run that reports each bad item (``error:`` lines), goes on, prints
  its summary and exits with status 1;
- ``ok``: the input is valid (if unusual): exit status 0 (the API: a return) and a correct output,
  which the case's check verifies (e.g. a {0, 1} mask gives what 0/255 gives);
- ``interrupt``: Ctrl-C gives one ``interrupted`` line, status 130, no partial file.

:func:`run_case` runs a case in a fresh workspace (:func:`make_workspace`) and returns its outcome:
``clean``, ``traceback`` (an exception other than SamSrError escaped, or a traceback was printed),
``silent wrong output`` (a bad input accepted, a wrong result, a partial output, a finished result
lost), ``silent overwrite`` (a file the user had was changed), ``refused`` (a valid input refused)
or ``unclear`` (a failure without one ``error:`` line). ``pytest tests/test_battery.py`` runs them
all and prints the counts; ``tests/test_battery.py`` requires every case to be clean.

Only ``sam_sr.cli.main``, ``sam_sr.Refiner``, ``sam_sr.imaging``, ``sam_sr.config`` and
``sam_sr.training`` are used, so the battery also runs against older code (to count its faults).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "sam_sr" / "assets"

CLASSES = {
    1: "{0,1} masks and float images",
    2: "decode modes the model was not trained for",
    3: "user files overwritten",
    4: "one bad file in a run; unwritable outputs",
    5: "EXIF orientation",
    6: "option values",
    7: "reproducible training",
    8: "exits and interrupts",
}
OUTCOMES = ("clean", "traceback", "silent wrong output", "silent overwrite", "refused", "unclear")
TINY = {"backbone": "resnet18", "out_indices": [0, 1, 2], "branch_channels": [8, 8, 8],
        "fusion_channels": 16, "decoder_hidden": [16, 16]}


@dataclass
class Case:
    """One input. ``argv`` (CLI) or ``call`` (API, ``call(ws)``) is given; ``{ws}``, ``{tiny}``,
    ``{assets}`` in argv are filled in. ``check(ws, result)`` returns None or what is wrong with an
    ``ok`` outcome (result: the API's return value, or ``(stdout, stderr)``). ``setup(ws)`` may
    change the workspace or return a function that undoes a temporary change (e.g. a patch)."""

    cls: int
    name: str
    expect: str
    argv: list[str] | None = None
    call: Callable[[Path], Any] | None = None
    check: Callable[[Path, Any], str | None] | None = None
    setup: Callable[[Path], Callable[[], None] | None] | None = None
    slow: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return f"{self.cls}-{self.name}"


# ------------------------------------------------------------------------------------------ data


def disk(h: int = 48, w: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo with a bright ellipse: (uint8 (h, w, 3), uint8 (h, w) 0/255 mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    ry, rx = h * rng.uniform(0.2, 0.3), w * rng.uniform(0.2, 0.3)
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    img[mask] = np.clip(img[mask].astype(int) + np.array([180, 120, 60]), 0, 255).astype(np.uint8)
    return img, mask.astype(np.uint8) * 255


def _rle(mask: np.ndarray) -> dict:
    import pycocotools.mask as mu
    r = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}


def tiny_checkpoint(path: Path) -> Path:
    """A tiny random CRM checkpoint (old and new code can both read it)."""
    import torch

    from sam_sr.checkpoint import save_checkpoint
    try:
        from sam_sr.variants import build_model
    except ImportError:                        # the code before the variant registry
        from sam_sr.models import build_model
    torch.manual_seed(0)
    model = build_model("crm", TINY).eval()
    save_checkpoint(path, model, "crm", model.config.to_dict(), iteration=0)
    return path


def make_workspace(ws: Path) -> None:
    """The inputs every case starts from (all 48 x 64 unless said)."""
    ws.mkdir(parents=True, exist_ok=True)
    img, mask = disk()
    Image.fromarray(img).save(ws / "photo.png")
    Image.fromarray(img).save(ws / "photo.jpg", quality=95)
    Image.fromarray(mask).save(ws / "mask.png")
    Image.fromarray(mask[::2, ::2]).save(ws / "mask_half.png")
    Image.fromarray((mask > 0).astype(np.uint8)).save(ws / "mask01.png")
    for d in ("images", "masks", "gt", "labels"):
        (ws / d).mkdir()
    for i in range(3):
        im, m = disk(seed=i + 1)
        Image.fromarray(im).save(ws / "images" / f"p{i}.png")
        Image.fromarray(m).save(ws / "masks" / f"p{i}.png")
        Image.fromarray(m).save(ws / "gt" / f"p{i}.png")
        lab = (m > 0).astype(np.uint8)
        lab[:6] = 2
        Image.fromarray(lab).save(ws / "labels" / f"p{i}.png")
    lab = (mask > 0).astype(np.uint8)
    lab[:6] = 2
    Image.fromarray(lab).save(ws / "label.png")
    # COCO: two photos, one detection each, named by image id
    (ws / "coco").mkdir()
    images, anns, results = [], [], []
    for i in (1, 2):
        im, m = disk(seed=10 + i)
        Image.fromarray(im).save(ws / "coco" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "height": 48, "width": 64})
        anns.append({"id": i, "image_id": i, "category_id": 1, "segmentation": _rle(m > 0), "iscrowd": 0,
                     "area": int((m > 0).sum()), "bbox": [0, 0, 64, 48]})
        results.append({"image_id": i, "category_id": 1, "score": 0.9, "segmentation": _rle(np.roll(m > 0, 2, 1))})
    (ws / "results.json").write_text(json.dumps(results))
    (ws / "ann.json").write_text(json.dumps({"images": images, "annotations": anns,
                                             "categories": [{"id": 1, "name": "thing"}]}))
    # a phone photo: stored turned 90 degrees, with the EXIF tag that turns it upright
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(img, 1)))
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(ws / "phone6.jpg", exif=exif, quality=95)
    upside = Image.fromarray(np.ascontiguousarray(img[::-1, ::-1]))
    exif = upside.getexif()
    exif[0x0112] = 3
    upside.save(ws / "phone3.jpg", exif=exif, quality=95)
    # a tiny training set and config
    for i in range(4):
        im, m = disk(64, 64, seed=20 + i)
        (ws / "train" / "images").mkdir(parents=True, exist_ok=True)
        (ws / "train" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(ws / "train" / "images" / f"{i}.png")
        Image.fromarray(m).save(ws / "train" / "masks" / f"{i}.png")
    (ws / "train.yaml").write_text(json.dumps({
        "model": TINY,
        "data": {"datasets": [{"layout": "generic", "root": str(ws / "train")}], "crop_size": 48,
                 "num_workers": 0},
        "train": {"out_dir": str(ws / "run"), "iterations": 2, "batch_size": 2, "lr": 1e-3, "log_every": 1,
                  "ckpt_every": 1, "image_every": 100, "seed": 0}}))


# ------------------------------------------------------------------------------------------ checks


def _refine(ws: Path, image, mask, **kw):
    from sam_sr import Refiner
    return Refiner.from_checkpoint(ws.parent / "tiny.pt", device="cpu", **kw).refine(image, mask)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def same_as_0_255(out: str, image: str = "photo.png", mask: str = "mask.png", rotate: int = 0):
    """The output equals the tiny model's refinement of the 0/255 mask (of the displayed photo)."""
    def check(ws: Path, _):
        from sam_sr.imaging.read import read_mask
        img = _read(ws / image)
        if rotate:
            img = np.ascontiguousarray(np.rot90(img, -rotate))
        ref = _refine(ws, img[..., :3], read_mask(ws / mask))
        got = _read(ws / out)
        if got.shape != ref.shape:
            return f"output {got.shape} differs from the photo's {ref.shape}"
        if not ref.any():
            return "reference is empty"
        return None if np.array_equal(got > 0, ref > 0) else \
            f"differs from the 0/255 mask's result in {int(((got > 0) != (ref > 0)).sum())} pixels"
    return check


def displayed_refinement(out: str):
    """The output is (nearly: the photo is a JPEG) the refinement of the photo as displayed (EXIF
    applied), which is photo.png, with mask.png."""
    def check(ws: Path, _):
        from sam_sr.imaging.read import read_mask
        img, _m = disk()
        ref = _refine(ws, img, read_mask(ws / "mask.png"))
        got = _read(ws / out)
        if got.shape != ref.shape:
            return f"output {got.shape} is not the displayed photo's {ref.shape}"
        agree = float(((got > 0) == (ref > 0)).mean())
        return None if agree > 0.97 else f"agrees with the upright refinement on {agree:.0%} of pixels"
    return check


def fg_near_coarse(out: str, coarse: Path, tol: float = 0.05):
    """The output's foreground share is within ``tol`` of the coarse mask's."""
    def check(ws: Path, _):
        got = _read(ws / out) > 0
        c = _read(coarse) >= 128
        d = abs(float(got.mean()) - float(c.mean()))
        return None if d <= tol else f"foreground {got.mean():.2f} vs coarse {c.mean():.2f}"
    return check


def file_format(out: str, fmt: str):
    def check(ws: Path, _):
        with Image.open(ws / out) as im:
            return None if im.format == fmt else f"{out} holds {im.format}, not {fmt}"
    return check


def stderr_has(text: str):
    def check(ws: Path, result):
        return None if text in result[1] else f"stderr lacks {text!r}"
    return check


def stdout_lacks(text: str, why: str):
    def check(ws: Path, result):
        return None if text not in result[0] else why
    return check


# ------------------------------------------------------------------------------------------ cases

I = ["infer", "--image", "{ws}/photo.png", "--mask", "{ws}/mask.png", "--checkpoint", "{tiny}"]
F = ["infer", "--images", "{ws}/images", "--masks", "{ws}/masks", "--out", "{ws}/out", "--checkpoint", "{tiny}"]
C = ["coco", "--results", "{ws}/results.json", "--annotations", "{ws}/ann.json", "--images", "{ws}/coco",
     "--checkpoint", "{tiny}"]
T = ["train", "--config", "{ws}/train.yaml"]


def _interrupt(ws):
    from sam_sr import Refiner
    old = Refiner.predict

    def predict(self, *a, **k):
        raise KeyboardInterrupt
    Refiner.predict = predict
    return lambda: setattr(Refiner, "predict", old)


def _bomb(ws, photo="images/p1.png", mask="masks/p1.png"):
    """Make ``photo`` 'oversized' (PIL's decompression-bomb guard) for the case."""
    Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(ws / photo)
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(ws / mask)
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 20_000               # 60,000 px > 2 x the limit: DecompressionBombError
    return lambda: setattr(Image, "MAX_IMAGE_PIXELS", old)


def _file(rel, content=b""):
    def setup(ws):
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return setup


def _save(rel, array, **kw):
    def setup(ws):
        Image.fromarray(array, **kw).save(ws / rel)
    return setup


def _mask_variant(kind):
    _, m = disk()
    fg = m > 0
    u8 = fg.astype(np.uint8)
    return {"I16": Image.fromarray(u8.astype(np.uint16)), "RGB": Image.fromarray(np.dstack([u8] * 3)),
            "LA": Image.fromarray(np.dstack([u8, np.full_like(u8, 255)]), "LA"),
            "P": Image.fromarray(u8, "P"), "1bit": Image.fromarray(fg),
            "tif": Image.fromarray(u8)}[kind]


def _save_variant(kind):
    def setup(ws):
        _mask_variant(kind).save(ws / ("mask_v.tif" if kind == "tif" else "mask_v.png"))
    return setup


def _api_refine(image_fn, mask_fn, **kw):
    def call(ws):
        from sam_sr.imaging.read import read_image, read_mask
        return _refine(ws, image_fn(read_image(ws / "photo.png")), mask_fn(read_mask(ws / "mask.png")), **kw)
    return call


def _api_same(dtype):
    def call(ws):
        from sam_sr.imaging.read import read_image
        img = read_image(ws / "photo.png")
        _, m = disk()
        a = _refine(ws, img, m)
        b = _refine(ws, img, (m > 0).astype(dtype))
        return a, b
    return call


def _equal_pair(ws, result):
    a, b = result
    return None if a.any() and np.array_equal(a, b) else "differs from the 0/255 mask's result"


def _float01(ws):
    from sam_sr.imaging.read import read_image
    img = read_image(ws / "photo.png")
    _, m = disk()
    return _refine(ws, img, m), _refine(ws, img.astype(np.float32) / 255, m)


def _train_twice(ws):
    from sam_sr.checkpoint import read_checkpoint
    from sam_sr.config import load_config
    from sam_sr.training import train
    weights = []
    for run in ("a", "b"):
        cfg = load_config(ws / "train.yaml", [f"train.out_dir={ws / run}", "data.num_workers=0"])
        train(cfg)
        weights.append(read_checkpoint(ws / run / "final.pt")["model"])
    return max(float((weights[0][k].float() - weights[1][k].float()).abs().max()) for k in weights[0])


def _same_weights(ws, diff):
    return None if diff == 0 else f"two runs with the same seed differ by up to {diff:.3g}"


def _interrupt_training_then_resume(ws):
    """Train 4 iterations uninterrupted; then the same run with Ctrl-C in iteration 3 (after the
    checkpoint of iteration 2), rerun to its end. Returns (status of the interrupted run, its stderr
    lines, status of the rerun, largest weight difference between the two final checkpoints)."""
    import sam_sr.training.refiner as training
    from sam_sr.checkpoint import read_checkpoint
    from sam_sr.cli import main
    base = T[:2] + [str(ws / "train.yaml"), "train.iterations=4", "train.ckpt_every=1"]

    def quiet(argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
            except KeyboardInterrupt:          # escaped the command line: a traceback for a user
                code = "a KeyboardInterrupt traceback"
        return code, [ln for ln in _lines(err.getvalue()) if not ln.startswith("train:")]
    whole, _ = quiet(base + [f"train.out_dir={ws / 'whole'}"])
    calls = {"n": 0}
    originals = {k: getattr(training, k) for k in ("point_loss", "refinement_loss")}

    def interrupting(name):
        def loss(*a, **k):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return originals[name](*a, **k)
        return loss
    for k in originals:
        setattr(training, k, interrupting(k))
    try:
        stopped, lines = quiet(base + [f"train.out_dir={ws / 'split'}"])
    finally:
        for k, f in originals.items():
            setattr(training, k, f)
    resumed, _ = quiet(base + [f"train.out_dir={ws / 'split'}"])
    diff = float("inf")
    if whole == 0 and resumed == 0 and (ws / "split" / "final.pt").is_file():
        a = read_checkpoint(ws / "whole" / "final.pt")["model"]
        b = read_checkpoint(ws / "split" / "final.pt")["model"]
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    return stopped, lines, resumed, diff


def _resumed_equals_whole(ws, result):
    stopped, lines, resumed, diff = result
    if stopped != 130 or lines[-1:] != ["interrupted"]:
        return f"Ctrl-C ended the run with status {stopped} and {lines[-2:]}, not 130 and 'interrupted'"
    if resumed != 0:
        return f"the rerun after Ctrl-C ended with status {resumed}"
    return None if diff <= 1e-6 else f"the resumed run's weights differ from an uninterrupted run's by {diff:.3g}"


def _train_out_dir_file(ws):
    from sam_sr.config import load_config
    from sam_sr.training import train
    return train(load_config(ws / "train.yaml", [f"train.out_dir={ws / 'photo.png'}"]))


def _export(src, dst, force=False):
    def call(ws):
        from sam_sr.training.export import export_checkpoint
        return export_checkpoint(src(ws), dst(ws), {"decode": "contour:2"}, force)
    return call


def _device(name):
    def call(ws):
        from sam_sr import Refiner
        return Refiner.from_checkpoint(ws.parent / "tiny.pt", device=name)
    return call


def _image_table_missing_folder(ws):
    from sam_sr.data.coco import image_table
    return image_table(ws / "ann.json", ws / "nope")


def _soft_masks(ws):
    """Coarse masks as a faint probability map, 0.4 on the object (mask.png and masks/*): refined as
    they are, they count as empty (nothing >= 0.5) and come back unchanged; binarised at 0.3 they are
    the object."""
    for p in [ws / "mask.png", *sorted((ws / "masks").glob("*.png"))]:
        Image.fromarray(((_read(p) > 0) * 102).astype(np.uint8)).save(p)


def thresholded(out: str, threshold: float, image: str = "photo.png", mask: str = "mask.png"):
    """The output equals the tiny model's refinement of the coarse mask binarised at ``threshold``,
    and not its refinement of the soft mask as it is (so the threshold was applied)."""
    def check(ws: Path, _):
        from sam_sr.imaging.read import read_mask
        img, soft = _read(ws / image)[..., :3], read_mask(ws / mask)
        ref = _refine(ws, img, (soft >= threshold).astype(np.uint8) * 255)
        as_is = _refine(ws, img, soft)
        got = _read(ws / out)
        if np.array_equal(ref > 0, as_is > 0):
            return "the case cannot tell: the soft and the binarised mask refine alike"
        if not np.array_equal(got > 0, ref > 0):
            same = np.array_equal(got > 0, as_is > 0)
            return "the threshold was ignored" if same else "differs from the binarised mask's result"
        return None
    return check


def _load_config(overrides):
    def call(ws):
        from sam_sr.config import load_config
        return load_config(ws / "train.yaml", overrides)
    return call


def cases() -> list[Case]:
    """Every case of the battery."""
    out: list[Case] = []

    def add(*a, **k):
        out.append(Case(*a, **k))

    # 1. {0, 1} masks and float images ------------------------------------------------------------
    add(1, "mask-0-1-png", "ok", I[:4] + ["{ws}/mask01.png"] + I[5:] + ["--out", "{ws}/o.png"],
        check=same_as_0_255("o.png"))
    for kind in ("I16", "RGB", "LA", "P", "1bit", "tif"):
        name = "mask_v.tif" if kind == "tif" else "mask_v.png"
        add(1, f"mask-0-1-{kind}", "ok", I[:4] + ["{ws}/" + name] + I[5:] + ["--out", "{ws}/o.png"],
            check=same_as_0_255("o.png"), setup=_save_variant(kind))
    add(1, "mask-half-size", "ok", I[:4] + ["{ws}/mask_half.png"] + I[5:] + ["--out", "{ws}/o.png"],
        check=same_as_0_255("o.png", mask="mask_half.png"))
    add(1, "folder-0-1-masks", "ok", F + ["--force"], check=same_as_0_255("out/p0.png", "images/p0.png", "masks/p0.png"),
        setup=lambda ws: [Image.fromarray((_read(ws / "masks" / f"p{i}.png") > 0).astype(np.uint8)).save(
            ws / "masks" / f"p{i}.png") for i in range(3)] and None)
    for dtype in (np.uint8, np.uint16, np.int32, np.int64, bool):
        add(1, f"api-mask-0-1-{np.dtype(dtype).name}", "ok", call=_api_same(dtype), check=_equal_pair)
    add(1, "api-float-image-0-1", "ok", call=_float01, check=_equal_pair)
    add(1, "api-float-image-0-255", "error", call=_api_refine(lambda i: i.astype(np.float32), lambda m: m))
    add(1, "api-float-image-nan", "error", call=_api_refine(lambda i: np.full(i.shape, np.nan, np.float32), lambda m: m))
    add(1, "api-int-image-above-255", "error", call=_api_refine(lambda i: i.astype(np.int32) * 4, lambda m: m))
    add(1, "api-float-mask-0-255", "error", call=_api_refine(lambda i: i, lambda m: m * 255))
    add(1, "api-logit-mask", "error", call=_api_refine(lambda i: i, lambda m: np.where(m > 0.5, 4.0, -4.0)))
    add(1, "api-nan-mask", "error", call=_api_refine(lambda i: i, lambda m: np.full(m.shape, np.nan, np.float32)))
    add(1, "api-complex-mask", "error", call=_api_refine(lambda i: i, lambda m: m.astype(np.complex64)))
    add(1, "api-4d-mask", "error", call=_api_refine(lambda i: i, lambda m: m[None, :, :, None]))
    add(1, "api-image-5-channels", "error", call=_api_refine(lambda i: np.dstack([i, i[..., :2]]), lambda m: m))
    add(1, "api-mask-none", "error", call=_api_refine(lambda i: i, lambda m: None))
    add(1, "api-image-path-string", "error", call=_api_refine(lambda i: "photo.png", lambda m: m))
    add(1, "image-16-bit-png", "ok", ["infer", "--image", "{ws}/photo16.png", "--mask", "{ws}/mask.png",
                                      "--checkpoint", "{tiny}", "--out", "{ws}/o.png"],
        setup=lambda ws: Image.fromarray((_read(ws / "photo.png")[..., 0].astype(np.uint16) * 257)).save(ws / "photo16.png"),
        check=lambda ws, r: None if _read(ws / "o.png").shape == (48, 64) else "wrong shape")

    # 2. decode modes the shipped model was not trained for ----------------------------------------
    EX = ["infer", "--example", "--out", "{ws}/o.png"]
    for mode in ("full", "strided:4", "strided:2", "hierarchical", "hierarchical:8", "bbox"):
        add(2, f"shipped-{mode}", "error", EX + ["--decode", mode])
    # the CRM band refiner with a wider band than it recommends: still a band, so the foreground stays
    # near the coarse mask's (the default, v4, changes regions on purpose)
    add(2, "shipped-contour-8", "ok", EX + ["--variant", "crm", "--decode", "contour:8"], slow=True,
        check=fg_near_coarse("o.png", ASSETS / "coffee_coarse.png"))
    add(2, "shipped-full-allowed-warns", "ok", EX + ["--decode", "full", "--allow-any-decode"], slow=True,
        check=stderr_has("warning:"))
    add(2, "api-shipped-full", "error", call=lambda ws: __import__("sam_sr").Refiner.from_checkpoint(decode="full"))
    add(2, "api-shipped-strided", "error", call=lambda ws: __import__("sam_sr").Refiner.from_checkpoint(decode="strided:4"))

    # 3. user files overwritten --------------------------------------------------------------------
    add(3, "out-is-image-forced", "error", I + ["--out", "{ws}/photo.png", "--force"])
    add(3, "out-is-mask-forced", "error", I + ["--out", "{ws}/mask.png", "--force"])
    add(3, "overlay-is-out", "error", I + ["--out", "{ws}/o.png", "--overlay", "{ws}/o.png"])
    add(3, "overlay-is-image-forced", "error", I + ["--out", "{ws}/o.png", "--overlay", "{ws}/photo.png", "--force"])
    add(3, "soft-is-mask-forced", "error", I[:4] + ["{ws}/o_soft.png"] + I[5:] + ["--out", "{ws}/o.png", "--soft",
                                                                                   "--force"],
        setup=lambda ws: shutil.copy(ws / "mask.png", ws / "o_soft.png"))
    add(3, "out-jpg", "error", I + ["--out", "{ws}/o.jpg"])
    add(3, "out-webp", "error", I + ["--out", "{ws}/o.webp"])
    add(3, "out-no-extension", "error", I + ["--out", "{ws}/o"])
    add(3, "out-tif", "ok", I + ["--out", "{ws}/o.tif"], check=file_format("o.tif", "TIFF"))
    add(3, "out-exists", "error", I + ["--out", "{ws}/old.png"], setup=_file("old.png", b"mine"))
    add(3, "out-exists-forced", "ok", I + ["--out", "{ws}/o.png", "--force"], setup=_file("o.png", b"mine"),
        check=same_as_0_255("o.png"), tags=("replaces",))
    add(3, "folder-same-stem", "error", F, setup=lambda ws: shutil.copy(ws / "images" / "p0.png", ws / "images" / "p0.jpg"))
    add(3, "folder-soft-name-collision", "error", F + ["--soft"],
        setup=lambda ws: (shutil.copy(ws / "images" / "p0.png", ws / "images" / "p1_soft.png"),
                          shutil.copy(ws / "masks" / "p0.png", ws / "masks" / "p1_soft.png")) and None)
    add(3, "folder-out-is-masks-forced", "error", F[:7] + ["{ws}/masks"] + F[8:] + ["--force"])
    add(3, "folder-out-is-images-forced", "error", F[:7] + ["{ws}/images"] + F[8:] + ["--force"])
    add(3, "folder-existing-outputs", "partial", F, setup=_file("out/p0.png", b"mine"))
    add(3, "labels-out-is-labels-forced", "error", ["infer", "--image", "{ws}/photo.png", "--labels", "{ws}/label.png",
                                                    "--num-classes", "3", "--out", "{ws}/label.png", "--force",
                                                    "--checkpoint", "{tiny}"])
    add(3, "coco-out-is-results-forced", "error", C + ["--out", "{ws}/results.json", "--force"])
    add(3, "coco-out-is-annotations-forced", "error", C + ["--out", "{ws}/ann.json", "--force"])
    add(3, "coco-report-is-out", "error", C + ["--out", "{ws}/o.json", "--summary", "{ws}/o.json"])
    add(3, "api-write-mask-jpg", "error", call=lambda ws: __import__("importlib").import_module("sam_sr.imaging").write_mask(
        ws / "o.jpg", np.zeros((4, 4), np.uint8)))

    # 4. one bad file in a run; unwritable outputs --------------------------------------------------
    add(4, "folder-oversized-photo", "partial", F, setup=_bomb)
    add(4, "folder-corrupt-photo", "partial", F, setup=_file("images/p1.png", b"not a png"))
    add(4, "folder-truncated-photo", "partial", F,
        setup=lambda ws: (ws / "images" / "p1.png").write_bytes((ws / "images" / "p1.png").read_bytes()[:200]))
    add(4, "folder-mask-wrong-aspect", "partial", F, setup=_save("masks/p1.png", np.zeros((40, 10), np.uint8)))
    add(4, "folder-mask-missing", "partial", F, setup=lambda ws: (ws / "masks" / "p1.png").unlink())
    add(4, "folder-out-is-a-file", "error", F[:7] + ["{ws}/photo.png"] + F[8:])
    add(4, "folder-out-parent-is-a-file", "error", F[:7] + ["{ws}/photo.png/out"] + F[8:])
    add(4, "out-parent-is-a-file", "error", I + ["--out", "{ws}/photo.png/o.png"])
    add(4, "overlay-parent-is-a-file", "error", I + ["--out", "{ws}/o.png", "--overlay", "{ws}/mask.png/ov.png"])
    add(4, "out-is-a-folder", "error", I + ["--out", "{ws}/images"])
    add(4, "sam-cache-is-a-file", "error", I + ["--out", "{ws}/o.png", "--sam-cache", "{ws}/photo.png",
                                                "--sam-checkpoint", "{ws}/sam.pt"])
    add(4, "eval-json-parent-is-a-file", "error",
        ["eval", "--root", "{ws}", "--ids", "", "--sources", "scale_gap_x4", "--checkpoint", "{tiny}",
         "--json", "{ws}/photo.png/r.json"], setup=lambda ws: shutil.copytree(ws / "images", ws / "images_eval") and None,
        check=stdout_lacks("coarse source", "evaluated, then lost the result"))
    add(4, "eval-json-new-folder", "ok",
        ["eval", "--root", "{ws}", "--ids", "", "--sources", "scale_gap_x4", "--checkpoint", "{tiny}",
         "--json", "{ws}/new/deeper/r.json"],
        check=lambda ws, r: None if (ws / "new" / "deeper" / "r.json").is_file() else "no JSON written")
    add(4, "labels-folder-one-above-num-classes", "partial",
        ["infer", "--images", "{ws}/images", "--labels", "{ws}/labels", "--num-classes", "3", "--out", "{ws}/out",
         "--checkpoint", "{tiny}"], setup=_save("labels/p1.png", np.full((48, 64), 9, np.uint8)))
    add(4, "coco-bad-rle", "partial", C + ["--out", "{ws}/o.json"],
        setup=lambda ws: (ws / "results.json").write_text(json.dumps(
            json.loads((ws / "results.json").read_text()) + [{"image_id": 1, "category_id": 1, "score": 0.1,
                                                              "segmentation": {"size": [48, 64], "counts": "0P2"}}])))
    add(4, "coco-unknown-image-id", "partial", C + ["--out", "{ws}/o.json"],
        setup=lambda ws: (ws / "results.json").write_text(json.dumps(
            json.loads((ws / "results.json").read_text()) + [{"image_id": 9, "category_id": 1, "score": 0.1,
                                                              "segmentation": [[1, 1, 9, 1, 9, 9]]}])))
    add(4, "coco-photo-missing", "partial", C + ["--out", "{ws}/o.json"], setup=lambda ws: (ws / "coco" / "2.png").unlink())
    add(4, "coco-polygons", "ok", C + ["--out", "{ws}/o.json", "--eval"],
        setup=lambda ws: (ws / "results.json").write_text(json.dumps(
            [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": [[10, 10, 40, 10, 40, 30, 10, 30]]}])),
        check=lambda ws, r: None if len(json.loads((ws / "o.json").read_text())) == 1 else "lost an instance")
    add(4, "coco-results-not-json", "error", C + ["--out", "{ws}/o.json"], setup=_file("results.json", b"[{"))
    add(4, "coco-results-is-annotations", "error", C[:2] + ["{ws}/ann.json"] + C[3:] + ["--out", "{ws}/o.json"])
    add(4, "coco-annotations-malformed", "error", C + ["--out", "{ws}/o.json"], setup=_file("ann.json", b'{"x": 1}'))
    add(4, "image-missing", "error", ["infer", "--image", "{ws}/nope.png", "--mask", "{ws}/mask.png", "--out",
                                      "{ws}/o.png", "--checkpoint", "{tiny}"])
    add(4, "mask-garbage", "error", I[:4] + ["{ws}/junk.png"] + I[5:] + ["--out", "{ws}/o.png"],
        setup=_file("junk.png", b"garbage"))
    add(4, "checkpoint-garbage", "error", I[:6] + ["{ws}/junk.pt", "--out", "{ws}/o.png"],
        setup=_file("junk.pt", b"garbage"))
    add(4, "oversized-single-photo", "error", I + ["--out", "{ws}/o.png"],
        setup=lambda ws: _bomb(ws, "photo.png", "mask.png"))

    # 5. EXIF orientation --------------------------------------------------------------------------
    add(5, "phone-photo-exif-6", "ok", ["infer", "--image", "{ws}/phone6.jpg", "--mask", "{ws}/mask.png", "--out",
                                        "{ws}/o.png", "--checkpoint", "{tiny}"],
        check=displayed_refinement("o.png"))
    add(5, "phone-photo-exif-3", "ok", ["infer", "--image", "{ws}/phone3.jpg", "--mask", "{ws}/mask.png", "--out",
                                        "{ws}/o.png", "--checkpoint", "{tiny}"],
        check=displayed_refinement("o.png"))
    add(5, "api-read-image-exif-6", "ok", call=lambda ws: __import__("importlib").import_module("sam_sr.imaging").read_image(ws / "phone6.jpg"),
        check=lambda ws, a: None if a.shape == (48, 64, 3) else f"read as {a.shape}, not as displayed (48, 64, 3)")

    # 6. option values -----------------------------------------------------------------------------
    for opt, val in (("--scales=-1,0.5", None), ("--scales", "2,3"), ("--scales", "nan"), ("--scales", "0"),
                     ("--scales", "0.5,inf"), ("--encoder-tile", "10"), ("--encoder-tile", "-8"),
                     ("--device", "bogus"), ("--device", "cuda:7"), ("--points-per-side", "0"),
                     ("--margin", "0.7"), ("--margin", "-1"), ("--mask-threshold", "1.5"), ("--min-size", "-1"),
                     ("--upsample-to", "-5"), ("--fusion-patches", "-1"), ("--decode", "spiral"),
                     ("--decode", "strided:0")):
        add(6, f"infer{opt.split('=')[0]}={val or opt.split('=')[1]}", "error",
            I + ["--out", "{ws}/o.png", opt] + ([val] if val else []))
    add(6, "eval-limit-negative", "error", ["eval", "--root", "{ws}", "--ids", "", "--limit", "-1", "--coarse-only"])
    add(6, "profile-runs-0", "error", ["profile", "--image", "{ws}/photo.png", "--mask", "{ws}/mask.png", "--runs", "0",
                                       "--json", ""])
    add(6, "profile-sizes-abc", "error", ["profile", "--image", "{ws}/photo.png", "--mask", "{ws}/mask.png",
                                          "--sizes", "abc", "--json", ""])
    add(6, "profile-threads-negative", "error", ["profile", "--image", "{ws}/photo.png", "--mask", "{ws}/mask.png",
                                                 "--threads", "-1", "--json", ""])
    add(6, "precompute-threads-negative", "error", ["precompute-sam", "--config", "{ws}/train.yaml", "--threads", "-1"])
    add(6, "labels-above-num-classes", "error", ["infer", "--image", "{ws}/photo.png", "--labels", "{ws}/label.png",
                                                 "--num-classes", "2", "--out", "{ws}/o.png", "--checkpoint", "{tiny}"])
    add(6, "num-classes-0", "error", ["infer", "--image", "{ws}/photo.png", "--labels", "{ws}/label.png",
                                      "--num-classes", "0", "--out", "{ws}/o.png", "--checkpoint", "{tiny}"])
    add(6, "labels-with-ignore-index", "ok", ["infer", "--image", "{ws}/photo.png", "--labels", "{ws}/label.png",
                                              "--num-classes", "2", "--ignore-index", "2", "--out", "{ws}/o.png",
                                              "--checkpoint", "{tiny}"],
        check=lambda ws, r: None if (_read(ws / "o.png")[:6] == 2).all() else "ignore pixels changed")
    add(6, "coco-pad-negative", "error", C + ["--out", "{ws}/o.json", "--pad", "-1"])
    add(6, "coco-min-iou-2", "error", C + ["--out", "{ws}/o.json", "--eval", "--min-iou", "2"])
    for override in ("train.iterations=abc", "train.batch_size=0", "train.ckpt_every=0", "train.lr=fast",
                     "train.lr=-1", "train.iterations=-5", "data.crop_size=0", "train.log_every=0",
                     "batch_size=0", "train.nope=1"):
        add(6, f"train-{override}", "error", T + [override])
        add(6, f"config-{override}", "error", call=_load_config([override]))

    # 7. reproducible training ---------------------------------------------------------------------
    add(7, "same-seed-same-weights", "ok", call=_train_twice, check=_same_weights, slow=True)

    # 8. exits and interrupts ----------------------------------------------------------------------
    add(8, "help", "ok", ["--help"])
    add(8, "infer-help", "ok", ["infer", "--help"])
    add(8, "no-command", "error", [])
    add(8, "unknown-command", "error", ["nope"])
    add(8, "unknown-option", "error", I + ["--out", "{ws}/o.png", "--nope"])
    add(8, "ctrl-c-one-image", "interrupt", I + ["--out", "{ws}/o.png"], setup=_interrupt)
    add(8, "ctrl-c-folder", "interrupt", F, setup=_interrupt)
    add(8, "ctrl-c-coco", "interrupt", C + ["--out", "{ws}/o.json"], setup=_interrupt)
    # -------------------------------------------------------------- more cases per class (round 2)
    G = ["figure", "--root", "{ws}", "--ids", "p0", "--source", "scale_gap_x4", "--checkpoint", "{tiny}"]
    CMP = ["compare", "--root", "{ws}", "--ids", "", "--sources", "scale_gap_x4"]
    add(3, "export-dst-is-src-forced", "error", ["export", "{ws}/t.pt", "{ws}/t.pt", "--force"],
        setup=lambda ws: shutil.copy(ws.parent / "tiny.pt", ws / "t.pt") and None)
    add(3, "api-export-dst-is-src-forced", "error", call=_export(lambda ws: ws / "t.pt", lambda ws: ws / "t.pt", True),
        setup=lambda ws: shutil.copy(ws.parent / "tiny.pt", ws / "t.pt") and None)
    add(3, "export-dst-exists", "error", ["export", "{tiny}", "{ws}/photo.png"])
    add(3, "figure-out-is-its-photo-forced", "error", G + ["--out", "{ws}/images/p0.png", "--force"])
    add(3, "figure-out-is-its-mask-forced", "error", G + ["--out", "{ws}/masks/p0.png", "--force"])
    add(3, "figure-out-jpg", "error", G + ["--out", "{ws}/f.jpg"])
    add(3, "figure-new-file", "ok", G + ["--out", "{ws}/f.png"], check=file_format("f.png", "PNG"))
    add(3, "folder-summary-is-report", "error", F + ["--summary", "{ws}/r.json", "--report", "{ws}/r.json"])
    add(3, "folder-report-exists", "error", F + ["--report", "{ws}/masks/p0.png"])
    add(3, "out-other-spelling-of-mask-forced", "error", I + ["--out", "{ws}/./images/../mask.png", "--force"])
    add(3, "out-symlink-to-mask-forced", "error", I + ["--out", "{ws}/link.png", "--force"],
        setup=lambda ws: (ws / "link.png").symlink_to(ws / "mask.png"))
    add(3, "overlay-is-soft", "error", I + ["--out", "{ws}/o.png", "--soft", "--overlay", "{ws}/o_soft.png"])
    add(3, "api-plan-out-is-masks", "error", call=lambda ws: __import__("importlib").import_module("sam_sr.batch.folders").plan_mask_folder(
        ws / "images", ws / "masks", ws / "masks"))

    add(4, "train-out-dir-is-a-file", "error", T + ["train.out_dir={ws}/photo.png"])
    add(4, "train-out-dir-parent-is-a-file", "error", T + ["train.out_dir={ws}/photo.png/run"])
    add(4, "api-train-out-dir-is-a-file", "error", call=_train_out_dir_file)
    add(4, "train-config-missing", "error", ["train", "--config", "{ws}/nope.yaml"])
    add(4, "train-config-not-yaml", "error", ["train", "--config", "{ws}/junk.yaml"], setup=_file("junk.yaml", b"a: [1,\n"))
    add(4, "train-data-root-missing", "error", T + ["data.datasets=[{{layout: generic, root: {ws}/nope}}]"])
    add(4, "coco-images-folder-missing", "error", C[:6] + ["{ws}/nope"] + C[7:] + ["--out", "{ws}/o.json"])
    add(4, "api-coco-images-folder-missing", "error", call=_image_table_missing_folder)
    add(4, "coco-report-parent-is-a-file", "error", C + ["--out", "{ws}/o.json", "--report", "{ws}/photo.png/r.html"])
    add(4, "folder-images-empty", "error", ["infer", "--images", "{ws}/e", "--masks", "{ws}/masks", "--out", "{ws}/out",
                                            "--checkpoint", "{tiny}"], setup=lambda ws: (ws / "e").mkdir())
    add(4, "folder-masks-folder-missing", "error", F[:4] + ["{ws}/nope"] + F[5:])
    add(4, "folder-gt-folder-missing", "error", F + ["--gt", "{ws}/nope"])
    add(4, "folder-gt-wrong-size", "partial", F + ["--gt", "{ws}/gt"], setup=_save("gt/p1.png", np.zeros((10, 10), np.uint8)))
    add(4, "export-src-not-a-checkpoint", "error", ["export", "{ws}/photo.png", "{ws}/e.pt"])
    add(4, "figure-id-missing", "error", G[:4] + ["zz"] + G[5:] + ["--out", "{ws}/f.png"])
    add(4, "compare-sam-cache-is-a-file", "error", CMP + ["--sam-cache", "{ws}/photo.png"])
    add(4, "compare-json-parent-is-a-file", "error", CMP + ["--json", "{ws}/photo.png/x.json"])
    add(4, "compare-root-missing", "error", ["compare", "--root", "{ws}/nope", "--ids", ""])
    add(4, "compare-checkpoint-missing", "error", CMP + ["--methods", "ckpt:{ws}/nope.pt"])
    add(4, "api-checkpoint-plain-state-dict", "error",
        call=lambda ws: (__import__("torch").save({"w": __import__("torch").zeros(1)}, ws / "sd.pt"),
                         __import__("sam_sr").Refiner.from_checkpoint(ws / "sd.pt")))
    add(4, "api-read-image-folder", "error", call=lambda ws: __import__("importlib").import_module("sam_sr.imaging").read_image(ws / "images"))

    add(6, "api-device-bogus", "error", call=_device("bogus"))
    add(6, "api-device-cuda-99", "error", call=_device("cuda:99"))
    add(6, "api-margin-negative", "error", call=lambda ws: _refine(ws, disk()[0], disk()[1], margin=-1))
    add(6, "api-mask-threshold-2", "error", call=lambda ws: __import__("sam_sr").Refiner.from_checkpoint(
        ws.parent / "tiny.pt", device="cpu").refine(disk()[0], disk()[1], mask_threshold=2.0))
    add(6, "api-num-classes-0", "error", call=lambda ws: __import__("importlib").import_module("sam_sr.inference.labels").refine_semantic(
        __import__("sam_sr").Refiner.from_checkpoint(ws.parent / "tiny.pt", device="cpu"), disk()[0],
        np.zeros((48, 64), np.uint8), 0))
    add(6, "variant-unknown", "error", I + ["--out", "{ws}/o.png", "--variant", "nope"])
    add(6, "variant-of-another-checkpoint", "error", I + ["--out", "{ws}/o.png", "--variant", "v3.4"])
    add(6, "compare-limit-negative", "error", CMP + ["--limit", "-1"])
    add(6, "compare-device-bogus", "error", CMP + ["--device", "bogus"])
    add(6, "compare-method-unknown", "error", CMP + ["--methods", "nope"])
    add(6, "export-decode-unknown", "error", ["export", "{tiny}", "{ws}/e.pt", "--decode", "spiral"])
    add(6, "export-valid-decode-unknown", "error", ["export", "{tiny}", "{ws}/e.pt", "--valid-decode", "nope"])
    add(6, "figure-height-negative", "error", G + ["--height", "-5", "--out", "{ws}/f.png"])
    add(6, "alignment-max-distance-0", "error", ["boundary-alignment", "--dataset", "{ws}", "--max-distance", "0"])
    add(6, "folder-report-not-html", "error", F + ["--report", "{ws}/r.txt"])
    add(6, "folder-summary-not-json", "error", F + ["--summary", "{ws}/r.txt"])
    add(6, "coco-mask-threshold-2", "error", C + ["--out", "{ws}/o.json", "--mask-threshold", "2"])
    add(6, "ablation-limit-negative", "error", ["ablation", "--limit", "-1", "--sam-checkpoint", "{ws}/sam.pt"])
    add(6, "eval-semantic-limit-negative", "error", ["eval-semantic", "--root", "{ws}", "--limit", "-2"])
    for override in ("train.seed=abc", "train.stop_at=-1", "data.num_workers=-1", "data.crop_size=abc"):
        add(6, f"train-{override}", "error", T + [override])

    add(1, "soft-mask-threshold", "ok", I + ["--out", "{ws}/o.png", "--mask-threshold", "0.3"],
        setup=_soft_masks, check=thresholded("o.png", 0.3))
    add(1, "folder-soft-masks-threshold", "ok", F + ["--mask-threshold", "0.3"], setup=_soft_masks,
        check=thresholded("out/p1.png", 0.3, "images/p1.png", "masks/p1.png"))
    add(6, "coco-mask-threshold-ignored", "error", C + ["--out", "{ws}/o.json", "--mask-threshold", "0.5"])
    add(6, "labels-mask-threshold-ignored", "error", ["infer", "--image", "{ws}/photo.png", "--labels",
                                                      "{ws}/label.png", "--num-classes", "3", "--mask-threshold",
                                                      "0.5", "--out", "{ws}/o.png", "--checkpoint", "{tiny}"])
    add(6, "mask-fusion-ignored", "error", I + ["--out", "{ws}/o.png", "--fusion", "majority"])
    add(6, "folder-fusion-ignored", "error", F + ["--fusion", "box"])

    add(7, "ctrl-c-then-resume-equals-uninterrupted", "ok", call=_interrupt_training_then_resume,
        check=_resumed_equals_whole, slow=True)

    add(8, "ctrl-c-eval", "interrupt", ["eval", "--root", "{ws}", "--ids", "", "--sources", "scale_gap_x4",
                                        "--checkpoint", "{tiny}", "--json", "{ws}/r.json"], setup=_interrupt)
    add(8, "ctrl-c-labels-folder", "interrupt", ["infer", "--images", "{ws}/images", "--labels", "{ws}/labels",
                                                 "--num-classes", "3", "--out", "{ws}/out", "--checkpoint", "{tiny}"],
        setup=_interrupt)
    add(8, "compare-help", "ok", ["compare", "--help"])
    return out


# ------------------------------------------------------------------------------------------ running


def _snapshot(ws: Path) -> dict[str, str]:
    return {str(p.relative_to(ws)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(ws.rglob("*")) if p.is_file()}


def _fill(argv: list[str], ws: Path) -> list[str]:
    return [a.format(ws=ws, tiny=ws.parent / "tiny.pt", assets=ASSETS) for a in argv]


def _run_cli(argv: list[str]) -> tuple[int | None, str, str, BaseException | None]:
    from sam_sr.cli import main
    out, err = io.StringIO(), io.StringIO()
    code, exc = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except BaseException as e:  # noqa: BLE001 - the battery classifies whatever escapes
            exc = e
            traceback.print_exc()
    return code, out.getvalue(), err.getvalue(), exc


def _lines(text: str) -> list[str]:
    """Non-empty lines of stderr that are not progress bars."""
    out = []
    for chunk in text.replace("\r", "\n").splitlines():
        s = chunk.strip()
        if s and not ("|" in s and ("it/s" in s or "img/s" in s or "s/img" in s or "?" in s or "pair/s" in s)):
            out.append(s)
    return out


def classify(case: Case, ws: Path, before: dict[str, str]) -> tuple[str, str]:
    """Run ``case`` in the prepared workspace ``ws`` and classify the outcome: (outcome, detail)."""
    undo = case.setup(ws) if case.setup else None
    undo = undo if callable(undo) else None
    if case.setup:
        before = _snapshot(ws)
    try:
        if case.call is not None:
            from sam_sr.errors import SamSrError
            try:
                result = case.call(ws)
            except SamSrError as exc:
                if case.expect == "error":
                    return "clean", f"SamSrError: {exc}"
                return "refused", f"SamSrError: {exc}"
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
                return "traceback", f"{type(exc).__name__}: {exc}"
            if case.expect == "error":
                return "silent wrong output", "accepted"
            why = case.check(ws, result) if case.check else None
            return ("silent wrong output", why) if why else ("clean", "ok")
        code, out, err, exc = _run_cli(_fill(case.argv, ws))
    finally:
        if undo:
            undo()
    after = _snapshot(ws)
    changed = sorted(k for k in before if k in after and after[k] != before[k] and "replaces" not in case.tags)
    gone = sorted(k for k in before if k not in after)
    new = sorted(k for k in after if k not in before)
    lines = _lines(err)
    errors = [ln for ln in lines if ln.startswith("error:")]
    if exc is not None or "Traceback (most recent call last)" in err:
        return "traceback", (f"{type(exc).__name__}: {exc}" if exc else err.strip().splitlines()[-1])
    if changed or gone:
        return "silent overwrite", f"changed {changed + gone}"
    detail = (errors or lines or [f"exit {code}"])[0][:200]
    if case.expect == "error":
        if code == 0:
            return "silent wrong output", f"exit 0: {out.strip().splitlines()[-1] if out.strip() else ''}"[:200]
        if code != 2 or len(errors) != 1:
            return "unclear", f"exit {code}, {len(errors)} error lines: {lines[:2]}"
        if new:
            return "silent wrong output", f"partial output {new}"
        why = case.check(ws, (out, err)) if case.check else None
        return ("silent wrong output", why) if why else ("clean", detail)
    if case.expect == "partial":
        if code == 0:
            return "silent wrong output", f"exit 0 with a bad item: {out.strip()[-120:]}"
        if code == 1 and errors and "refined" in out:
            return "clean", detail
        return ("refused" if code == 2 else "unclear"), f"exit {code}: {detail}"
    if case.expect == "interrupt":
        if code == 130 and lines and lines[-1] == "interrupted" and not new:
            return "clean", "interrupted"
        return "unclear", f"exit {code}: {lines[-1:] or ''} new {new}"
    # ok
    if code != 0:
        return ("refused" if code == 2 else "unclear"), f"exit {code}: {detail}"
    why = case.check(ws, (out, err)) if case.check else None
    return ("silent wrong output", why) if why else ("clean", "ok")


def workspace(case: Case, root: Path) -> Path:
    """The folder ``root/<case id>`` that :func:`run_case` runs ``case`` in."""
    return root / case.id.replace("/", "_").replace(":", "_")


def run_case(case: Case, root: Path) -> tuple[str, str]:
    """Run one case in :func:`workspace` (``root`` holds ``tiny.pt``, see :func:`prepare`)."""
    ws = workspace(case, root)
    if ws.exists():
        shutil.rmtree(ws)
    make_workspace(ws)
    return classify(case, ws, _snapshot(ws))


def prepare(root: Path) -> Path:
    """The battery's folder with its tiny checkpoint."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "tiny.pt").is_file():
        tiny_checkpoint(root / "tiny.pt")
    return root


def table(results: dict[str, tuple[int, str, str]]) -> str:
    """Counts per class and outcome (markdown)."""
    lines = ["| class | " + " | ".join(OUTCOMES) + " | cases |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for c, title in CLASSES.items():
        rows = [o for (k, o, _) in results.values() if k == c]
        lines.append(f"| {c}. {title} | " + " | ".join(str(rows.count(o)) for o in OUTCOMES) + f" | {len(rows)} |")
    allrows = [o for (_, o, _) in results.values()]
    lines.append("| all | " + " | ".join(str(allrows.count(o)) for o in OUTCOMES) + f" | {len(allrows)} |")
    return "\n".join(lines)


__all__ = ["Case", "CLASSES", "OUTCOMES", "cases", "run_case", "prepare", "table"]
