"""A live SAM source: the image encoder runs once per distinct photo."""
import numpy as np

from sam_sr.sam import build_tiny_sam
from sam_sr.sam.source import LiveSam


def _counting_source():
    """A live tiny SAM whose predictor counts its image-encoder runs: (source, predictor, calls)."""
    source = LiveSam(build_tiny_sam(image_size=256))
    calls = []
    pred = source.predictor(np.zeros((32, 48, 3), np.uint8))
    original = type(pred).set_image
    pred.set_image = lambda image, fmt="RGB": (calls.append(1), original(pred, image, fmt))[1]
    return source, pred, calls


def test_the_encoder_runs_once_per_photo_content():
    source, pred, calls = _counting_source()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (32, 48, 3)).astype(np.uint8)
    b = a.copy()
    b[0, 0] ^= 1                                     # one pixel differs: another photo
    for image in (a, a.copy(), b, b):
        assert source.predictor(image) is pred
    assert len(calls) == 2


def test_forget_image_makes_the_encoder_run_again_for_the_same_photo():
    source, pred, calls = _counting_source()
    a = np.full((32, 48, 3), 7, np.uint8)
    source.predictor(a)
    source.predictor(a)
    assert len(calls) == 1
    source.forget_image()
    assert source.predictor(a) is pred and len(calls) == 2
