import numpy as np
import pytest
from PIL import Image

from sam_sr.errors import SamSrError
from sam_sr.io import check_aspect, check_output_path, mask_to_float, read_image, read_mask, write_png


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


def test_palette_mask_uses_nonzero_index(tmp_path):
    im = Image.fromarray(np.array([[0, 1, 2, 0]], np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png")
    assert list(read_mask(tmp_path / "p.png")[0]) == [0, 1, 1, 0]


def test_float_and_bool_arrays():
    assert mask_to_float(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert mask_to_float(np.array([[2.0, -1.0]])).tolist() == [[1.0, 0.0]]


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(SamSrError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SamSrError, match="cannot read"):
        read_mask(tmp_path / "bad.png")


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
