"""The battery of bad and unusual inputs (issue 15) at the API level, for the classes the library
owns: each ends in one SamSrError naming what is wrong, in a per-item report of a folder or COCO run,
or in the same result as the well-formed input; never a traceback or a silently wrong output."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from sam_sr import Refiner, SamSrError
from sam_sr import imaging as sio
from sam_sr.inference.labels import refine_semantic
from tests.conftest import disk_photo


@pytest.fixture
def refiner(tiny_checkpoint):
    return Refiner.from_checkpoint(tiny_checkpoint, device="cpu")


@pytest.fixture
def photo():
    return disk_photo(48, 64)


# --------------------------------------------------------------- 1. masks and images as arrays

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, bool])
def test_binary_masks_of_any_integer_dtype_refine_like_0_255(refiner, photo, dtype):
    img, mask = photo
    reference = refiner.refine(img, mask)
    assert not np.array_equal(reference, refiner.refine(img, np.zeros_like(mask)))   # not read as empty
    assert np.array_equal(refiner.refine(img, (mask > 0).astype(dtype)), reference)


@pytest.mark.parametrize("case,match", [
    ("float_image_0_255", r"float image must hold values in \[0, 1\]"),
    ("nan_image", "NaN"),
    ("int_image_above_255", "0..255"),
    ("float_mask_0_255", r"float mask must hold values in \[0, 1\]"),
    ("logit_mask", r"float mask must hold values in \[0, 1\]"),
    ("complex_mask", "unsupported mask dtype"),
    ("mask_4d", "2-D"),
])
def test_unusable_arrays_are_one_error(refiner, photo, case, match):
    img, mask = photo
    args = {"float_image_0_255": (img.astype(np.float32), mask),
            "nan_image": (np.full(img.shape, np.nan, np.float32), mask),
            "int_image_above_255": (img.astype(np.int32) * 4, mask),
            "float_mask_0_255": (img, mask.astype(np.float32)),
            "logit_mask": (img, np.where(mask > 0, 4.0, -4.0)),
            "complex_mask": (img, mask.astype(np.complex64)),
            "mask_4d": (img, mask[None, :, :, None])}[case]
    with pytest.raises(SamSrError, match=match):
        refiner.refine(*args)


# --------------------------------------------------------------- 1. mask files

@pytest.mark.parametrize("kind", ["L01", "I16_01", "RGB01", "LA01", "P", "1bit"])
def test_mask_files_in_odd_formats_read_like_0_255(tmp_path, kind):
    _, mask = disk_photo(48, 64)
    fg = mask > 0
    u8 = fg.astype(np.uint8)
    im = {"L01": lambda: Image.fromarray(u8),
          "I16_01": lambda: Image.fromarray(u8.astype(np.uint16)),
          "RGB01": lambda: Image.fromarray(np.dstack([u8] * 3)),
          "LA01": lambda: Image.fromarray(np.dstack([u8, np.full_like(u8, 255)]), "LA"),
          "P": lambda: Image.fromarray(u8 * 3, "P"),
          "1bit": lambda: Image.fromarray(fg)}[kind]()
    im.save(tmp_path / "m.png")
    assert np.array_equal(sio.read_mask(tmp_path / "m.png") >= 0.5, fg)


# --------------------------------------------------------------- 5. EXIF orientation

def test_a_phone_photo_is_refined_against_a_mask_of_the_displayed_photo(tmp_path, refiner):
    img, mask = disk_photo(48, 64)
    stored = np.ascontiguousarray(np.rot90(img, 1))           # the sensor's pixels: turned 90 deg ccw
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6                                         # display: rotate 90 deg clockwise
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = sio.read_image(tmp_path / "phone.jpg")
    assert shown.shape == img.shape
    assert shown[mask > 0].mean() > shown[mask == 0].mean() + 60   # the bright object is where the mask is
    out = refiner.refine(shown, mask)                        # no aspect-ratio refusal
    assert out.shape == mask.shape


# --------------------------------------------------------------- 3. outputs

@pytest.mark.parametrize("case,match", [
    ("out_is_image", "is the input --image"),
    ("out_is_mask_forced", "is the input --mask"),
    ("overlay_is_out", "--out and --overlay are the same file"),
    ("soft_is_out", "--out and --soft are the same file"),
    ("out_jpg", "lossy"),
    ("out_webp", "lossy"),
    ("out_no_ext", "unknown output format"),
    ("out_exists", "output exists"),
    ("out_is_dir", "is a folder"),
    ("parent_is_file", "is a file"),
])
def test_output_paths_are_checked_before_a_run(tmp_path, case, match):
    img, mask = tmp_path / "photo.jpg", tmp_path / "mask.png"
    img.write_bytes(b"photo")
    mask.write_bytes(b"mask")
    (tmp_path / "exists.png").write_bytes(b"old")
    (tmp_path / "adir.png").mkdir()
    out = {"out_is_image": img, "out_is_mask_forced": mask, "out_jpg": tmp_path / "o.jpg",
           "out_webp": tmp_path / "o.webp", "out_no_ext": tmp_path / "o",
           "out_exists": tmp_path / "exists.png", "out_is_dir": tmp_path / "adir.png",
           "parent_is_file": mask / "o.png"}.get(case, tmp_path / "o.png")
    outputs = {"--out": out}
    if case == "overlay_is_out":
        outputs["--overlay"] = out
    if case == "soft_is_out":
        outputs["--soft"] = out
    with pytest.raises(SamSrError, match=match):
        sio.check_outputs({"--image": img, "--mask": mask}, outputs, force=case == "out_is_mask_forced",
                          images=("--out", "--overlay", "--soft"))
    assert img.read_bytes() == b"photo" and mask.read_bytes() == b"mask"


@pytest.mark.parametrize("case,match", [
    ("same_stem", "same stem"),
    ("out_is_masks", "overwrite an input"),
    ("out_is_file", "is a file"),
    ("images_missing", "images folder not found"),
    ("images_is_file", "it is a file"),
    ("no_images", "no images"),
])
def test_folder_runs_are_refused_before_they_start(tmp_path, case, match):
    from sam_sr.batch import folders as batch
    for d in ("images", "masks", "empty"):
        (tmp_path / d).mkdir()
    img, mask = disk_photo()
    for stem in ("a", "b"):
        Image.fromarray(img).save(tmp_path / "images" / f"{stem}.jpg")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{stem}.png")
    (tmp_path / "afile").write_bytes(b"")
    images, out = tmp_path / "images", tmp_path / "out"
    if case == "same_stem":
        Image.fromarray(img).save(tmp_path / "images" / "a.png")
    elif case == "out_is_masks":
        out = tmp_path / "masks"
    elif case == "out_is_file":
        out = tmp_path / "afile"
    elif case == "images_missing":
        images = tmp_path / "nope"
    elif case == "images_is_file":
        images = tmp_path / "afile"
    elif case == "no_images":
        images = tmp_path / "empty"
    with pytest.raises(SamSrError, match=match):
        batch.plan_mask_folder(images, tmp_path / "masks", out)


# --------------------------------------------------------------- 4. unwritable outputs

@pytest.mark.parametrize("errno_,text", [(13, "Permission denied"), (30, "Read-only file system"),
                                         (28, "No space left on device")])
def test_write_errors_are_one_error_and_leave_no_file(tmp_path, monkeypatch, errno_, text):
    import tempfile

    def fail(*a, **k):
        raise OSError(errno_, text)

    monkeypatch.setattr(tempfile, "mkstemp", fail)
    with pytest.raises(SamSrError, match=f"cannot write .*{text}"):
        sio.write_mask(tmp_path / "o.png", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_read_only_output_folder_in_a_folder_run_is_reported_per_item(tmp_path, refiner):
    from sam_sr.batch import folders as batch
    img, mask = disk_photo()
    for d in ("images", "masks", "out"):
        (tmp_path / d).mkdir()
    Image.fromarray(img).save(tmp_path / "images" / "a.jpg")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    (tmp_path / "out").chmod(0o500)
    try:
        jobs = batch.plan_mask_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
        s = batch.run_mask_jobs(refiner, jobs, progress=False, verbose=False)
    finally:
        (tmp_path / "out").chmod(0o700)
    assert s["failed"] == 1 and "not writable" in s["items"][0]["error"]


def test_an_output_folder_that_becomes_a_file_fails_items_not_the_run(tmp_path, refiner):
    from sam_sr.batch import folders as batch
    img, mask = disk_photo()
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for stem in ("a", "b"):
        Image.fromarray(img).save(tmp_path / "images" / f"{stem}.jpg")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{stem}.png")
    jobs = batch.plan_mask_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
    (tmp_path / "out").write_bytes(b"")                       # replaced by a file after planning
    s = batch.run_mask_jobs(refiner, jobs, progress=False, verbose=False)
    assert s["failed"] == 2 and all("is a file" in it["error"] for it in s["items"])


# --------------------------------------------------------------- 4. oversized photos in folder runs

def test_decompression_bombs_are_reported_per_item(tmp_path, refiner, monkeypatch):
    from sam_sr.batch import folders as batch
    from sam_sr.batch.coco import refine_coco
    from sam_sr.data.coco import encode_mask, image_table
    img, mask = disk_photo(48, 64)
    for d in ("images", "masks", "labels"):
        (tmp_path / d).mkdir()
    Image.fromarray(img).save(tmp_path / "images" / "1.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "1.png")
    Image.fromarray((mask > 0).astype(np.uint8)).save(tmp_path / "labels" / "1.png")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(tmp_path / "images" / "2.png")
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(tmp_path / "masks" / "2.png")
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(tmp_path / "labels" / "2.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)   # 40,000 px > 2 x the limit
    runs = {
        "masks": batch.run_mask_jobs(refiner, batch.plan_mask_folder(
            tmp_path / "images", tmp_path / "masks", tmp_path / "o1"), progress=False, verbose=False),
        "labels": batch.run_label_jobs(refiner, batch.plan_label_folder(
            tmp_path / "images", tmp_path / "labels", tmp_path / "o2"), 2, progress=False, verbose=False),
    }
    results = [{"image_id": i, "category_id": 1, "score": 1.0,
                "segmentation": encode_mask(np.ones((48, 64), bool) if i == 1 else np.ones((200, 200), bool))}
               for i in (1, 2)]
    _, runs["coco"] = refine_coco(refiner, results, image_table(images_dir=tmp_path / "images"),
                                       progress=False, verbose=False)
    for name, s in runs.items():
        failed = [it for it in s["items"] if it["status"] == "failed"]
        assert len(failed) == 1 and "too large" in failed[0]["error"], name


# --------------------------------------------------------------- 6. label values

def test_labels_above_num_classes_are_refused(refiner):
    img, mask = disk_photo(48, 64)
    labels = (mask > 0).astype(np.uint8)
    labels[0, 0] = 5
    with pytest.raises(SamSrError, match=r"outside 0\.\.2: 5"):
        refine_semantic(refiner, img, labels, num_classes=3)
    labels[0, 0] = 255
    with pytest.raises(SamSrError, match="outside 0..2: 255"):
        refine_semantic(refiner, img, labels, num_classes=3)
    assert refine_semantic(refiner, img, labels, num_classes=3, ignore_index=255)[0, 0] == 255
    with pytest.raises(SamSrError, match="num_classes must be"):
        refine_semantic(refiner, img, labels, num_classes=0)


# --------------------------------------------------------------- COCO files

@pytest.mark.parametrize("case,match", [
    ("missing", "not found"),
    ("not_json", "cannot read COCO results file"),
    ("a_dict", "JSON list"),
    ("annotation_file", "is a COCO annotation file"),
    ("binary", "cannot read COCO results file"),
])
def test_bad_coco_results_files(tmp_path, case, match):
    from sam_sr.data.coco import load_results
    p = tmp_path / "r.json"
    content = {"not_json": b"[{", "a_dict": b'{"x": 1}', "annotation_file": b'{"annotations": []}',
               "binary": b"\xff\xfe\x00"}.get(case)
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(SamSrError, match=match):
        load_results(p)


@pytest.mark.parametrize("case,match", [
    ("no_images", "'images' list"),
    ("dup_id", "appears twice"),
    ("no_numeric_stems", "integer image id"),
])
def test_bad_coco_image_tables(tmp_path, case, match):
    from sam_sr.data.coco import image_table
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "imgs" / "cat.png")
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"no_images": {"annotations": []},
                               "dup_id": {"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]}
                               }.get(case, {})))
    with pytest.raises(SamSrError, match=match):
        if case == "no_numeric_stems":
            image_table(images_dir=tmp_path / "imgs")
        else:
            image_table(ann)


def test_bad_coco_items_are_reported_and_kept(tmp_path, refiner):
    from sam_sr.batch.coco import refine_coco
    from sam_sr.data.coco import encode_mask, image_table
    (tmp_path / "imgs").mkdir()
    img, mask = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "imgs" / "7.png")
    good = encode_mask(mask > 0)
    items = [{"image_id": 7, "category_id": 1, "score": 0.9, "segmentation": good},
             {"image_id": 7, "category_id": 1, "score": 0.9},
             {"image_id": 7, "category_id": 1, "score": 0.9, "segmentation": {"size": [48, 64], "counts": 5}},
             {"image_id": 7, "category_id": 1, "score": 0.9, "segmentation": [[0, 0, 1]]},
             {"image_id": 7, "category_id": 1, "score": 0.9, "segmentation": {"size": [64, 48], "counts": good["counts"]}},
             {"image_id": "7", "category_id": 1, "score": 0.9, "segmentation": good},
             None]
    out, s = refine_coco(refiner, items, image_table(images_dir=tmp_path / "imgs"),
                              progress=False, verbose=False)
    assert [it["status"] for it in s["items"]] == ["ok"] + ["failed"] * 6
    assert out[1:] == items[1:]
    assert all(it["error"] for it in s["items"][1:])


# ------------------------------------------- 7. the inputs of issue 24: one clear line, or the right result

def _cli(argv, capsys):
    from sam_sr.cli import main
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("decode", ["bbox:1e20", "bbox:100000000000000000000", "contour:99999999"])
def test_huge_decode_parameters_are_one_error(tmp_path, tiny_checkpoint, capsys, decode):
    img, mask = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "p.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    code, err = _cli(["infer", str(tmp_path / "p.png"), str(tmp_path / "m.png"), "--out", str(tmp_path / "o.png"),
                      "--checkpoint", str(tiny_checkpoint), f"--decode={decode}", "--allow-any-decode"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "decode" in err[0], err
    assert not (tmp_path / "o.png").exists()


def test_a_mask_with_a_leading_axis_of_one_refines_like_the_plain_mask(refiner, photo):
    img, mask = photo
    assert np.array_equal(refiner.refine(img, mask[None]), refiner.refine(img, mask))
    with pytest.raises(SamSrError, match="channel-first"):
        refiner.refine(img, np.stack([mask] * 3))


def test_a_signed_mask_is_refused_not_emptied(refiner, photo):
    img, mask = photo
    signed = np.where(mask > 0, 1, -1).astype(np.int16)
    with pytest.raises(SamSrError, match="negative values"):
        refiner.refine(img, signed)


def test_a_path_given_for_an_array_names_the_reader(refiner, photo):
    img, mask = photo
    with pytest.raises(SamSrError, match=r"read the file first with sam_sr.imaging.read_mask"):
        refiner.refine(img, "coarse_mask_of_mine.png")
    with pytest.raises(SamSrError, match=r"read the file first with sam_sr.imaging.read_image"):
        refiner.refine("photo.jpg", mask)


def test_aspect_errors_print_width_x_height(refiner, photo):
    img, _ = photo                                   # 64 wide, 48 high
    with pytest.raises(SamSrError, match=r"mask \(10x40 px\) and the image \(64x48 px\)"):
        refiner.refine(img, np.ones((40, 10), np.uint8))


def test_a_decompression_bomb_quotes_one_limit(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    with pytest.raises(SamSrError) as info:
        sio.read_image(tmp_path / "big.png")
    text = str(info.value)
    assert "300x200 px = 60,000 pixels" in text and "20,000 pixels" in text
    assert "exceeds" not in text and "40000" not in text and "40,000" not in text   # PIL's own numbers


def test_out_pointing_at_a_folder_says_so(tmp_path, tiny_checkpoint, capsys):
    img, mask = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "p.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    (tmp_path / "outdir").mkdir()
    code, err = _cli(["infer", "--image", str(tmp_path / "p.png"), "--mask", str(tmp_path / "m.png"), "--out",
                      str(tmp_path / "outdir"), "--checkpoint", str(tiny_checkpoint)], capsys)
    assert code == 2 and len(err) == 1 and "is a folder" in err[0] and "extension" not in err[0], err


def test_a_mask_in_the_stored_orientation_of_an_exif_rotated_photo_names_exif(tmp_path, tiny_checkpoint, capsys):
    img, mask = disk_photo(48, 64)                   # stored 64 x 48, displayed 48 x 64 (tag 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(mask).save(tmp_path / "raw_mask.png")
    code, err = _cli(["infer", str(tmp_path / "phone.jpg"), str(tmp_path / "raw_mask.png"), "--out",
                      str(tmp_path / "o.png"), "--checkpoint", str(tiny_checkpoint)], capsys)
    assert code == 2 and len(err) == 1 and "EXIF orientation" in err[0] and "rotate the mask" in err[0], err
    assert not (tmp_path / "o.png").exists()


def test_a_checkpoint_with_pickled_objects_gives_no_unsafe_advice(tmp_path):
    import torch
    bad = tmp_path / "objects.pt"
    import argparse
    torch.save({"format": "sam-sr", "model": {}, "thing": argparse.Namespace(code="a pickled object")}, bad)
    with pytest.raises(SamSrError) as info:
        Refiner.from_checkpoint(bad, device="cpu")
    assert "weights_only" not in str(info.value) and "only weights" in str(info.value)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(SamSrError, match="corrupt") as info:
        Refiner.from_checkpoint(truncated, device="cpu")
    assert "weights_only" not in str(info.value)


def test_a_scale_gap_of_zero_is_refused_before_evaluating(tmp_path, tiny_checkpoint, capsys):
    for i in range(2):
        img, mask = disk_photo(48, 64, seed=i)
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / "images" / f"{i}.jpg")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    for src in ("scale_gap_x0", "scale_gap_x1", "scale_gap_xfoo", "nonsense"):
        code, err = _cli(["eval", "--root", str(tmp_path), "--ids", "", "--sources", src, "--checkpoint",
                          str(tiny_checkpoint)], capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith("error:") and src in err[0], (src, err)


@pytest.mark.slow
def test_profile_on_a_corrupt_image_is_one_error(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    Image.fromarray(disk_photo(48, 64)[1]).save(tmp_path / "m.png")
    code, err = _cli(["profile", "--image", str(tmp_path / "bad.png"), "--mask", str(tmp_path / "m.png"),
                      "--sizes", "", "--configs", "default", "--runs", "1", "--warmup", "0", "--checkpoint",
                      str(tiny_checkpoint), "--json", str(tmp_path / "p.json")], capsys)
    errors = [line for line in err if not line.startswith("profile:")]        # the progress bar's lines
    assert code == 2 and len(errors) == 1 and "cannot read image" in errors[0], err
    assert "Traceback" not in "\n".join(err)


def test_a_folder_run_where_every_pair_fails_writes_no_report(tmp_path, tiny_checkpoint, capsys):
    img, mask = disk_photo(48, 64)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks" / "u2net").mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(img).save(tmp_path / "images" / f"{name}.jpg")
        Image.fromarray(mask).save(tmp_path / "masks" / "u2net" / f"{name}.png")
    code, err = _cli(["infer", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out",
                      str(tmp_path / "out"), "--report", str(tmp_path / "r.html"), "--checkpoint",
                      str(tiny_checkpoint)], capsys)
    assert code == 1 and not (tmp_path / "r.html").exists() and not (tmp_path / "r_files").exists()
    assert any("no report" in line for line in err), err


def test_rerunning_a_finished_training_run_says_so(tmp_path, capsys):
    from sam_sr.cli import train_main
    from tests.test_training import _config
    cfg = _config(tmp_path, 2, ckpt_every=1)
    import yaml
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({k: cfg[k] for k in ("model", "data", "train")}))
    assert train_main(["--config", str(tmp_path / "c.yaml")]) == 0
    capsys.readouterr()
    assert train_main(["--config", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "already finished" in out and "nan" not in out


def test_a_damaged_training_state_is_one_error(tmp_path, capsys):
    import yaml

    from sam_sr.cli import train_main
    from tests.test_training import _config
    cfg = _config(tmp_path, 2, ckpt_every=1)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({k: cfg[k] for k in ("model", "data", "train")}))
    assert train_main(["--config", str(tmp_path / "c.yaml"), "train.stop_at=1"]) == 0
    weights = tmp_path / "run" / "state" / "model.safetensors"
    assert weights.is_file()
    weights.write_bytes(weights.read_bytes()[:64])            # cut off, as a full disk or a crash leaves it
    capsys.readouterr()
    assert train_main(["--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0] and "train.resume=false" in err[0], err


@pytest.mark.slow
def test_upsampling_beyond_the_memory_at_hand_is_one_error(tmp_path, tiny_checkpoint):
    """A real allocation failure: the process's address space is capped (RLIMIT_AS) and --upsample-to
    40000 asks for a 40000 x 30000 refinement."""
    import subprocess
    import sys
    img, mask = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "p.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "from sam_sr.cli import main; "
            f"sys.exit(main(['infer', {str(tmp_path / 'p.png')!r}, {str(tmp_path / 'm.png')!r}, '--out', "
            f"{str(tmp_path / 'o.png')!r}, '--checkpoint', {str(tiny_checkpoint)!r}, '--upsample-to', '40000']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if "ImportError" in r.stderr:
        pytest.skip("torch itself does not load under a 6 GiB address-space limit on this machine")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "not enough memory" in lines[0], r.stderr[-2000:]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("hw", [(8, 8), (20, 300), (10, 2000), (1200, 11)])
def test_tiny_or_extreme_photos_change_only_the_boundary_band_and_say_why(hw, tiny_checkpoint, caplog):
    """Sides under 32 px or aspect ratios over 100: a SAM variant's SAM step is skipped with a warning
    (its info says why), and the boundary step changes only pixels within its band of the contour."""
    import logging

    from sam_sr.inference.band import contour_band
    from tests.variants.test_registry import build_tiny_sam
    h, w = hw
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: 3 * h // 4 + 1, w // 4: 3 * w // 4 + 1] = 255
    from sam_sr.sam.source import LiveSam
    from sam_sr.sam.stage import SamInputs
    from sam_sr.variants import get_variant
    base = Refiner.from_checkpoint(tiny_checkpoint, device="cpu", decode="contour:2")
    r = Refiner(base.model, "cpu", base.cascade, sam_inputs=SamInputs(get_variant("sam-prompt").stage(),
                                                                       LiveSam(build_tiny_sam())))
    with caplog.at_level(logging.WARNING, logger="sam_sr"):
        res = r.predict(img, mask)
    assert "too small or too narrow for SAM" in res.info["sam"]["skipped"]
    assert any("only the boundary step ran" in m for m in caplog.messages)
    changed = (res.mask > 0) != (mask > 0)
    band = contour_band((mask > 0).astype(np.uint8), 2)
    assert not (changed & ~band).any()


def test_positional_image_and_mask_work_and_misuse_names_the_flags(tmp_path, tiny_checkpoint, capsys):
    img, mask = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "p.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    ck = ["--checkpoint", str(tiny_checkpoint)]
    assert _cli(["infer", str(tmp_path / "p.png"), str(tmp_path / "m.png"), "--out", str(tmp_path / "o.png")] + ck,
                capsys)[0] == 0 and (tmp_path / "o.png").is_file()
    code, err = _cli(["infer", str(tmp_path / "p.png"), str(tmp_path / "m.png")] + ck, capsys)
    assert code == 2 and len(err) == 1 and "give --out" in err[0]
    code, err = _cli(["infer", str(tmp_path / "p.png"), "--out", str(tmp_path / "x.png")] + ck, capsys)
    assert code == 2 and len(err) == 1 and "IMAGE MASK, or --image IMAGE --mask MASK" in err[0]
