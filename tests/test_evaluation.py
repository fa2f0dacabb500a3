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
