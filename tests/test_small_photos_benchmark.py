"""benchmarks/small_photos.py's what-if SAM frame: at 1024 px it reproduces SamPredictor.set_image's
embedding (so the smaller frames differ only by their size), and a smaller frame gives the 64 x 64
embedding the mask decoder and the region network read."""
import importlib.util

import numpy as np
import pytest
import torch

from tests.conftest import ROOT

pytest.importorskip("mobile_sam")


def _bench():
    spec = importlib.util.spec_from_file_location("small_photos", ROOT / "benchmarks" / "small_photos.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_framed_encoder_matches_sam_at_1024_and_keeps_the_grid_at_512():
    from sam_sr.sam import load_sam
    from sam_sr.sam.loader import predictor
    bench = _bench()
    sam = load_sam("vit_t", device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (96, 144, 3), dtype=np.uint8)
    pred = predictor(sam)
    pred.set_image(image)
    ours = bench.framed_encoder(sam, 1024)(image)
    assert ours.shape == pred.features.shape == (1, 256, 64, 64)
    assert torch.allclose(ours, pred.features, atol=1e-4)
    small = bench.framed_encoder(sam, 512)(image)
    assert small.shape == (1, 256, 64, 64) and not torch.allclose(small, pred.features, atol=1e-2)


@pytest.mark.slow
def test_trimmed_encoder_equals_sam_on_a_square_photo_and_fills_the_padding_elsewhere():
    from sam_sr.sam import load_sam
    from sam_sr.sam.loader import predictor
    bench = _bench()
    sam = load_sam("vit_t", device="cpu")
    pred = predictor(sam)
    square = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    pred.set_image(square)
    embed = bench.trimmed_encoder(sam)
    assert torch.allclose(embed(square), pred.features, atol=1e-4)      # no padding: SAM's own embedding
    wide = np.random.default_rng(2).integers(0, 256, (96, 144, 3), dtype=np.uint8)   # 683 x 1024 in the frame
    trimmed = embed(wide)
    assert trimmed.shape == (1, 256, 64, 64)
    assert torch.equal(trimmed[..., 43:, :], trimmed[..., 63:64, 63:64].expand(1, 256, 21, 64))  # padding cells
    pred.set_image(wide)            # the layers' resolutions are restored: the library's own call still runs
    assert not torch.allclose(trimmed[..., :43, :], pred.features[..., :43, :], atol=1e-2)
