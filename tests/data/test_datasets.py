import numpy as np
import pytest
from PIL import Image

from sam_sr.data import RefinementDataset, concat_samples, load_samples
from sam_sr.data.perturb import CoarseMaskSynthesizer
from sam_sr.data.transforms import train_transform
from sam_sr.errors import SamSrError
from tests.conftest import save_pair


def _ids(samples):
    return sorted(s.id for s in samples)


def test_msra10k(tmp_path):
    for i in range(3):
        save_pair(tmp_path / "MSRA10K_Imgs_GT" / "Imgs", tmp_path / "MSRA10K_Imgs_GT" / "Imgs", f"{i}", i)
    (tmp_path / "MSRA10K_Imgs_GT" / "Imgs" / "orphan.jpg").write_bytes(b"")
    assert _ids(load_samples({"layout": "msra10k", "root": tmp_path})) == ["0", "1", "2"]


def test_duts(tmp_path):
    save_pair(tmp_path / "DUTS-TR-Image", tmp_path / "DUTS-TR-Mask", "a", 0)
    save_pair(tmp_path / "DUTS-TR-Image", tmp_path / "DUTS-TR-Mask", "b", 1)
    save_pair(tmp_path / "DUTS-TE-Image", tmp_path / "DUTS-TE-Mask", "c", 2)
    assert _ids(load_samples({"layout": "duts", "root": tmp_path})) == ["TE/c", "TR/a", "TR/b"]


@pytest.mark.parametrize("gt_dir", ["pixelwiseGT-new-PNG", "DUT-OMRON-gt-pixelwise/pixelwiseGT-new-PNG"])
def test_dut_omron(tmp_path, gt_dir):
    save_pair(tmp_path / "DUT-OMRON-image", tmp_path / gt_dir, "im1", 0)
    assert _ids(load_samples({"layout": "dut_omron", "root": tmp_path})) == ["im1"]


def test_ecssd(tmp_path):
    save_pair(tmp_path / "images", tmp_path / "ground_truth_mask", "0001", 0)
    assert _ids(load_samples({"layout": "ecssd", "root": tmp_path})) == ["0001"]


def test_fss1000(tmp_path):
    for cls in ("ab_wheel", "zebra"):
        for n in (1, 2):
            save_pair(tmp_path / cls, tmp_path / cls, str(n), n)
    assert _ids(load_samples({"layout": "fss1000", "root": tmp_path})) == [
        "ab_wheel/1", "ab_wheel/2", "zebra/1", "zebra/2"]


def test_generic_with_coarse_sources_and_ids_file(tmp_path):
    for i, stem in enumerate(["x", "y", "z"]):
        save_pair(tmp_path / "images", tmp_path / "masks", stem, i)
        save_pair(tmp_path / "tmp", tmp_path / "coarse" / "netA", stem, i + 10)
    (tmp_path / "ids.txt").write_text("# split\nx\nz\n")
    samples = load_samples({"layout": "generic", "root": tmp_path, "ids_file": tmp_path / "ids.txt"})
    assert _ids(samples) == ["x", "z"]
    assert all(set(s.coarse) == {"netA"} for s in samples)
    only = load_samples({"layout": "generic", "root": tmp_path, "coarse_sources": []})
    assert all(s.coarse == {} for s in only)


def test_big(tmp_path):
    d = tmp_path / "test"
    save_pair(d, d, "aeroplane_00001_im", 0)
    img = Image.open(d / "aeroplane_00001_im.jpg")
    (d / "aeroplane_00001_im.png").rename(d / "aeroplane_00001_gt.png")
    Image.open(d / "aeroplane_00001_gt.png").save(d / "aeroplane_00001_seg.png")
    samples = load_samples({"layout": "big", "root": tmp_path})
    assert _ids(samples) == ["aeroplane_00001"]
    assert samples[0].coarse["seg"].name == "aeroplane_00001_seg.png"
    assert img.size == (128, 96)


def test_concat_and_errors(tmp_path):
    save_pair(tmp_path / "a" / "images", tmp_path / "a" / "masks", "1", 0)
    save_pair(tmp_path / "b" / "images", tmp_path / "b" / "ground_truth_mask", "2", 1)
    both = concat_samples([{"layout": "generic", "root": tmp_path / "a"},
                           {"layout": "ecssd", "root": tmp_path / "b"}])
    assert _ids(both) == ["1", "2"]
    with pytest.raises(SamSrError, match="unknown dataset layout"):
        load_samples({"layout": "voc", "root": tmp_path})
    with pytest.raises(SamSrError, match="not found"):
        load_samples({"layout": "generic", "root": tmp_path / "missing"})
    with pytest.raises(SamSrError, match="no samples"):
        (tmp_path / "c" / "images").mkdir(parents=True)
        (tmp_path / "c" / "masks").mkdir()
        load_samples({"layout": "generic", "root": tmp_path / "c"})


def test_training_items_are_aligned_crops(tmp_path):
    for i in range(2):
        save_pair(tmp_path / "images", tmp_path / "masks", f"{i}", i)
        save_pair(tmp_path / "tmp", tmp_path / "coarse" / "net", f"{i}", i)
    samples = load_samples({"layout": "generic", "root": tmp_path})
    ds = RefinementDataset(samples, CoarseMaskSynthesizer(), train_transform(64), real_coarse_prob=0.5)
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["gt"].shape == (1, 64, 64)
    assert item["coarse"].shape == (1, 64, 64)
    assert set(np.unique(item["gt"].numpy())) <= {0.0, 1.0}
    assert 0 <= float(item["coarse"].min()) and float(item["coarse"].max()) <= 1
    # the bright ellipse is the object: image brightness agrees with the ground truth after the crop
    red = item["image"][0]
    if item["gt"].sum() > 20 and (1 - item["gt"]).sum() > 20:
        assert red[item["gt"][0] > 0].mean() > red[item["gt"][0] == 0].mean()


def test_native_crops_keep_the_image_scale():
    """crop_mode native with scale 1: the crop is a window of the image (no resizing) on foreground."""
    h, w = 150, 200
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx % 256, yy % 256, np.zeros_like(xx)], -1).astype(np.uint8)
    gt = np.zeros((h, w), np.float32)
    gt[100:140, 150:190] = 1
    tf = train_transform(64, jitter=(0, 0, 0), grayscale_prob=0.0, mode="native", native_scale=(1.0, 1.0))
    for _ in range(5):
        out = tf(image=image, mask=gt, coarse=gt)
        assert out["image"].shape == (64, 64, 3) and out["coarse"].shape == (64, 64)
        steps = np.diff(out["image"][..., 0].astype(int), axis=1)
        assert set(np.unique(np.abs(steps))) == {1}          # neighbouring columns: one pixel apart
        assert np.all(np.diff(out["image"][:, 0, 1].astype(int)) == 1)
        assert out["mask"].sum() > 0                          # the crop contains foreground
        # the ground truth moved with the image: foreground where x >= 150 and y >= 100
        x, y = out["image"][..., 0].astype(int), out["image"][..., 1].astype(int)
        np.testing.assert_array_equal(out["mask"] > 0, (x >= 150) & (x < 190) & (y >= 100) & (y < 140))
    with pytest.raises(ValueError, match="crop mode"):
        train_transform(64, mode="zoom")
