import os

import numpy as np
import pytest
from PIL import Image

from sam_sr import imaging as sio
from sam_sr.errors import SamSrError
from sam_sr.imaging.outputs import check_output_path
from sam_sr.imaging.read import check_aspect, mask_to_float, read_image, read_mask
from sam_sr.imaging.write import write_png


def test_images_are_converted_to_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgba = np.zeros((3, 4, 4), np.uint8); rgba[..., 0] = 200; rgba[..., 3] = 10
    Image.fromarray(rgba).save(tmp_path / "a.png")
    g16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    for name in ("g.png", "a.png", "g16.png"):
        im = read_image(tmp_path / name)
        assert im.shape == (3, 4, 3) and im.dtype == np.uint8
    assert (read_image(tmp_path / "a.png")[..., 0] == 200).all()
    assert read_image(tmp_path / "g.png")[2, 3, 1] == gray[2, 3]
    assert read_image(tmp_path / "g16.png")[2, 3, 0] == (11 * 5000) // 257


def test_masks_of_any_bit_depth_threshold_at_half_range(tmp_path):
    m8 = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(m8).save(tmp_path / "m8.png")
    m16 = np.array([[0, 32767, 32768, 65535]], np.uint16)
    Image.fromarray(m16).save(tmp_path / "m16.png")
    rgb = np.zeros((1, 4, 3), np.uint8); rgb[0, 2:, 1] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.zeros((1, 4, 4), np.uint8); rgba[..., 3] = m8
    Image.fromarray(rgba).save(tmp_path / "rgba_alpha.png")
    Image.fromarray(m8 > 127).save(tmp_path / "bits.png")
    expected = [False, False, True, True]
    for name in ("m8.png", "m16.png", "rgb.png", "rgba_alpha.png", "bits.png"):
        m = read_mask(tmp_path / name)
        assert m.dtype == np.float32 and m.shape == (1, 4), name
        assert list(m[0] >= 0.5) == expected, name


# --------------------------------------------------------------- {0, 1} masks (issue 15, class 1)

BINARY = np.array([[0, 1, 1, 0], [1, 0, 0, 1]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.int8, bool])
def test_integer_masks_holding_0_and_1_are_binary(dtype):
    m = mask_to_float(BINARY.astype(dtype))
    assert m.tolist() == BINARY.astype(np.float32).tolist()


@pytest.mark.parametrize("mode,ext", [("L", ".png"), ("I;16", ".png"), ("I", ".tif"), ("RGB", ".png")])
def test_a_0_1_mask_file_reads_as_0_255_does(tmp_path, mode, ext):
    a = BINARY.astype(np.uint16 if mode == "I;16" else np.int32 if mode == "I" else np.uint8)
    if mode == "RGB":
        a = np.dstack([a] * 3)
    path = tmp_path / f"m01{ext}"
    Image.fromarray(a).save(path)
    assert Image.open(path).mode == mode
    assert read_mask(path).tolist() == BINARY.astype(np.float32).tolist()


def test_soft_integer_masks_still_scale_by_their_range():
    # only an integer mask whose values are all 0 or 1 is binary; any other value scales by the range
    assert mask_to_float(np.array([[0, 1, 2]], np.uint8)).max() < 0.5
    assert mask_to_float(np.array([[0, 1, 300]], np.int32))[0, 2] == pytest.approx(300 / 65535)


def test_float_masks_and_bool_arrays():
    assert mask_to_float(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert mask_to_float(np.array([[0.2, 1.0005]], np.float32)).tolist() == [[pytest.approx(0.2), 1.0]]
    for bad in ([[0.0, 255.0]], [[-1.0, 0.5]], [[np.nan, 0.5]]):
        with pytest.raises(SamSrError, match="float mask|NaN"):
            mask_to_float(np.array(bad, np.float32))


def test_palette_mask_uses_nonzero_index(tmp_path):
    im = Image.fromarray(np.array([[0, 1, 2, 0]], np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png")
    assert list(read_mask(tmp_path / "p.png")[0]) == [0, 1, 1, 0]


# --------------------------------------------------------------- float images (class 1)


def test_float_images_in_0_1_are_scaled_and_0_255_refused():
    img = np.zeros((2, 3, 3), np.float32)
    img[0, 0] = 1.0
    assert sio.to_rgb_uint8(img)[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(SamSrError, match=r"\[0, 1\].*divide"):
        sio.to_rgb_uint8(img * 200)          # a 0-255 float image is not taken as near-white
    with pytest.raises(SamSrError, match="0..255"):
        sio.to_rgb_uint8(np.full((2, 3, 3), 1000, np.int32))


# --------------------------------------------------------------- EXIF orientation (class 5)


def _tagged_jpeg(path, orientation: int) -> np.ndarray:
    """A 40 x 60 JPEG with a red block top-left (as stored) and the given EXIF orientation."""
    a = np.zeros((40, 60, 3), np.uint8)
    a[:10, :20] = (255, 0, 0)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif, quality=95)
    return a


def test_exif_orientation_6_is_applied_to_photos_and_masks(tmp_path):
    _tagged_jpeg(tmp_path / "phone.jpg", 6)       # 6: the camera was turned; display rotated 90 cw
    img = read_image(tmp_path / "phone.jpg")
    assert img.shape == (60, 40, 3)
    # rotated 90 degrees clockwise: the stored top-left block is now top-right
    assert img[3:17, -7:-3, 0].min() > 200 and img[-20:, :10, 0].max() < 50
    m = np.zeros((40, 60), np.uint8)
    m[:10, :20] = 255
    mim = Image.fromarray(m)
    exif = mim.getexif()
    exif[0x0112] = 6
    mim.save(tmp_path / "mask.png", exif=exif)
    mask = read_mask(tmp_path / "mask.png")
    assert mask.shape == (60, 40) and mask[:20, -10:].min() == 1.0
    plain = np.zeros((60, 40), np.uint8)
    Image.fromarray(plain).save(tmp_path / "plain.png")
    assert read_mask(tmp_path / "plain.png").shape == (60, 40)


# --------------------------------------------------------------- files


def test_missing_corrupt_and_oversized_files(tmp_path, monkeypatch):
    with pytest.raises(SamSrError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SamSrError, match="cannot read"):
        read_mask(tmp_path / "bad.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)   # 10,000 px > 2 x the limit: a "bomb"
    with pytest.raises(SamSrError, match="too large"):
        read_image(tmp_path / "big.png")


def test_aspect_check():
    check_aspect((300, 400), (30, 40))
    check_aspect((300, 400), (301, 400))
    with pytest.raises(SamSrError, match="aspect ratio"):
        check_aspect((300, 400), (400, 300))


def test_output_path_and_atomic_write(tmp_path):
    p = tmp_path / "out.png"
    write_png(p, np.zeros((2, 2), np.uint8))
    with pytest.raises(SamSrError, match="exists"):
        check_output_path(p)
    assert check_output_path(p, force=True) == p
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]  # no temporary file left behind


# --------------------------------------------------------------- output formats (class 3)


@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".tif", "TIFF"), (".TIFF", "TIFF")])
def test_output_format_follows_the_extension(tmp_path, ext, fmt):
    a = np.array([[0, 255], [255, 0]], np.uint8)
    p = tmp_path / f"out{ext}"
    sio.write_mask(p, a)
    with Image.open(p) as im:
        assert im.format == fmt and np.array_equal(np.asarray(im), a)
    q = tmp_path / f"legacy{ext}"
    write_png(q, a)                           # the old name follows the extension too
    with Image.open(q) as im:
        assert im.format == fmt


@pytest.mark.parametrize("name", ["x.jpg", "x.JPEG", "x.webp", "x.bmp", "x.mask", "x"])
def test_lossy_and_unknown_output_extensions_are_refused(tmp_path, name):
    with pytest.raises(SamSrError, match="lossy|unknown output format"):
        sio.write_mask(tmp_path / name, np.zeros((2, 2), np.uint8))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["x.jpg", "x.webp"])
def test_write_png_refuses_to_put_png_bytes_in_a_jpeg(tmp_path, name):
    with pytest.raises(SamSrError, match="lossy"):
        write_png(tmp_path / name, np.zeros((2, 2), np.uint8))
    assert not any(tmp_path.iterdir())


def test_palette_is_kept_in_png_and_tiff(tmp_path):
    pal = [0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (256 * 3 - 9)
    lab = np.array([[0, 1], [2, 1]], np.uint8)
    for name in ("l.png", "l.tif"):
        sio.write_mask(tmp_path / name, lab, palette=pal)
        with Image.open(tmp_path / name) as im:
            assert im.mode == "P" and im.getpalette()[:9] == pal[:9]
            assert np.array_equal(np.asarray(im), lab)


# --------------------------------------------------------------- output collisions (class 3)


def test_an_output_that_is_an_input_is_refused_even_with_force(tmp_path):
    img, mask = tmp_path / "img.png", tmp_path / "mask.png"
    img.write_bytes(b"photo")
    mask.write_bytes(b"mask")
    for force in (False, True):
        with pytest.raises(SamSrError, match="--out .* is the input --mask"):
            sio.check_outputs({"--image": img, "--mask": mask}, {"--out": mask}, force=force)
    link = tmp_path / "link.png"
    link.symlink_to(img)
    with pytest.raises(SamSrError, match="is the input --image"):
        sio.check_outputs({"--image": img}, {"--out": link}, force=True)
    with pytest.raises(SamSrError, match="is the input"):   # another spelling of the same path
        sio.check_outputs([img], [tmp_path / "sub" / ".." / "img.png"], force=True)
    assert img.read_bytes() == b"photo" and mask.read_bytes() == b"mask"


def test_outputs_must_differ_from_each_other(tmp_path):
    with pytest.raises(SamSrError, match="--out and --overlay are the same file"):
        sio.check_outputs({}, {"--out": tmp_path / "o.png", "--overlay": tmp_path / "o.png"})
    outs = sio.check_outputs({"--image": tmp_path / "i.jpg"},
                             {"--out": tmp_path / "o.png", "--soft": tmp_path / "s.png",
                              "--overlay": None}, images=("--out", "--soft"))
    assert outs == {"--out": tmp_path / "o.png", "--soft": tmp_path / "s.png"}
    with pytest.raises(SamSrError, match="lossy"):
        sio.check_outputs({}, {"--out": tmp_path / "o.jpg"}, images=("--out",))


def test_existing_outputs_and_unwritable_folders(tmp_path):
    (tmp_path / "o.png").write_bytes(b"old")
    with pytest.raises(SamSrError, match="output exists"):
        sio.check_outputs({}, {"--out": tmp_path / "o.png"})
    assert sio.check_outputs({}, {"--out": tmp_path / "o.png"}, force=True)
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(SamSrError, match="is a file"):
        sio.check_outputs({}, {"--out": tmp_path / "afile" / "sub" / "o.png"})


def test_folder_stem_collisions_are_found_before_a_run(tmp_path):
    ims = [tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "a.png"]
    with pytest.raises(SamSrError, match="a.jpg and .*a.png have the same stem"):
        sio.folder_outputs(ims, tmp_path / "out")
    outs = sio.folder_outputs(ims[:2], tmp_path / "out", ".tif")
    assert outs == [tmp_path / "out" / "a.tif", tmp_path / "out" / "b.tif"]
    with pytest.raises(SamSrError, match="lossy"):
        sio.folder_outputs(ims[:2], tmp_path / "out", ".jpg")


def test_folder_outputs_never_overwrite_the_run_s_inputs(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "a.png").write_bytes(b"mask")
    with pytest.raises(SamSrError, match="overwrite an input"):
        sio.folder_outputs([tmp_path / "a.jpg"], masks, protected=[masks / "a.png"])
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SamSrError, match="is a file"):
        sio.folder_outputs([tmp_path / "a.jpg"], tmp_path / "file")


# --------------------------------------------------------------- unwritable outputs (class 4)


def test_atomic_write_into_a_file_s_subfolder_is_one_error(tmp_path):
    (tmp_path / "afile").write_bytes(b"keep")
    with pytest.raises(SamSrError, match="cannot write"):
        sio.atomic_write_bytes(tmp_path / "afile" / "out.png", b"x")
    assert (tmp_path / "afile").read_bytes() == b"keep"


def test_os_errors_while_writing_become_one_error_and_leave_nothing(tmp_path, monkeypatch):
    def no_space(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(SamSrError, match="cannot write .*No space left"):
        sio.atomic_write_bytes(tmp_path / "out.png", b"x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions do not bind root (or non-POSIX systems)")
def test_read_only_folder_is_one_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SamSrError, match="not writable"):
            check_output_path(ro / "o.png")
        with pytest.raises(SamSrError, match="cannot write"):
            sio.atomic_write_bytes(ro / "o.png", b"x")
    finally:
        ro.chmod(0o700)


def test_hidden_files_are_not_listed(tmp_path):
    for name in ("a.jpg", "._a.jpg", ".b.png.tmp", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in sio.list_images(tmp_path)] == ["a.jpg"]
    with pytest.raises(SamSrError, match="it is a file"):
        sio.list_images(tmp_path / "a.jpg")
