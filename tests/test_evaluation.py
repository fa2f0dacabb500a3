"""Dataset evaluation: coarse vs refined scores per source and the share of images that lose IoU."""
import numpy as np

from sam_sr.data import load_samples
from sam_sr.evaluation.evaluate import evaluate, format_tables
from tests.conftest import save_pair


class _Damage:
    """A stand-in refiner: returns the coarse mask, but empties it for the second photo."""

    def __init__(self):
        self.calls = 0

    def refine(self, image, mask):
        self.calls += 1
        out = (np.asarray(mask) > 0).astype(np.uint8) * 255
        return out * 0 if self.calls == 2 else out


def test_share_of_images_losing_more_than_one_point(tmp_path):
    for i in range(2):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", seed=i)
    samples = load_samples({"layout": "generic", "root": str(tmp_path)})
    res = evaluate(_Damage(), samples, ["scale_gap_x4"])["scale_gap_x4"]
    assert res["refined"]["share_losing_1pt"] == 50.0
    assert res["refined"]["iou_mean"] < res["coarse"]["iou_mean"]
    assert "images losing more than 1 IoU point: 50.0%" in format_tables({"scale_gap_x4": res})


class _Record:
    """A stand-in refiner that returns its input thresholded at 0.5 and keeps what it was given."""

    def __init__(self):
        self.given = []

    def refine(self, image, mask):
        self.given.append(np.asarray(mask))
        return (np.asarray(mask, np.float32) >= 0.5).astype(np.uint8) * 255


def _soft_source(tmp_path):
    """One photo with a soft coarse map (the truth blurred, 0..255) as the source ``net``."""
    import cv2
    from PIL import Image
    save_pair(tmp_path / "images", tmp_path / "masks", "p0", seed=3)
    gt = np.asarray(Image.open(tmp_path / "masks/p0.png"))
    soft = cv2.GaussianBlur(gt, (0, 0), 4)
    (tmp_path / "coarse/net").mkdir(parents=True)
    Image.fromarray(soft).save(tmp_path / "coarse/net/p0.png")
    return load_samples({"layout": "generic", "root": str(tmp_path)}), soft


def test_refiners_get_the_soft_map_only_when_asked_and_the_coarse_score_is_the_same(tmp_path):
    import pytest

    from sam_sr.errors import SamSrError
    from sam_sr.evaluation.evaluate import compare
    samples, soft = _soft_source(tmp_path)
    assert 0 < ((soft > 0) & (soft < 255)).mean()             # the map has values between 0 and 255
    runs = {}
    for how in ("binary", "soft"):
        rec = _Record()
        runs[how] = compare({"r": rec}, samples, ["net", "gt"], coarse_input=how)
        net, gt = rec.given
        if how == "binary":
            assert net.dtype == bool and gt.dtype == bool
        else:
            assert net.dtype == np.float32 and ((net > 0) & (net < 1)).any()
            np.testing.assert_allclose(net, soft / 255.0, atol=1e-6)
            assert set(np.unique(gt)) <= {0.0, 1.0}                 # a synthetic source stays binary
    for src in ("net", "gt"):
        assert runs["soft"][src]["coarse"] == runs["binary"][src]["coarse"]
        # this stand-in thresholds at 0.5, so its output is the binary coarse mask either way
        assert runs["soft"][src]["r"]["iou_mean"] == pytest.approx(runs["binary"][src]["r"]["iou_mean"])
    with pytest.raises(SamSrError, match="coarse input"):
        evaluate(_Record(), samples, ["net"], coarse_input="grey")


def test_the_command_lines_coarse_inputs_are_the_evaluations():
    """``compare`` and ``eval`` spell the choices out (no torch for ``--help``); they must stay equal."""
    from sam_sr.cli.argtypes import COARSE_INPUT_NAMES
    from sam_sr.evaluation.evaluate import COARSE_INPUTS
    assert COARSE_INPUT_NAMES == COARSE_INPUTS


def test_blocky_sources_are_nearest_upsampled_and_checked(tmp_path):
    import pytest

    from sam_sr.data.perturb import blocky
    from sam_sr.errors import SamSrError
    from sam_sr.evaluation.evaluate import check_sources, coarse_for
    save_pair(tmp_path / "images", tmp_path / "masks", "p0", seed=0)
    samples = load_samples({"layout": "generic", "root": str(tmp_path)})
    gt = np.zeros((64, 64), bool)
    gt[10:50, 12:40] = True
    gt[30:60, 30:62] = True
    assert np.array_equal(coarse_for(samples[0], "blocky_x8", gt), blocky(gt, 8).astype(np.float32))
    check_sources(["blocky_x8", "scale_gap_x4", "gt"], samples)
    with pytest.raises(SamSrError, match="blocky_x8"):
        check_sources(["blocky_x1"], samples)
