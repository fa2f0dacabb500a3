"""SAM's image encoder over several photos in one call equals ``SamPredictor.set_image`` per photo."""
import numpy as np
import pytest
import torch

from sam_sr.sam import build_tiny_sam, predictor
from sam_sr.sam.encode import encode_images, set_predictor_features


def _photos():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, hw + (3,)).astype(np.uint8) for hw in ((40, 60), (64, 32), (50, 50))]


def _counted(sam):
    """The encoder's calls and their batch sizes."""
    sizes = []
    sam.image_encoder.register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    return sizes


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_batched_embeddings_equal_set_image_with_one_encoder_call_per_batch(batch):
    sam = build_tiny_sam(image_size=256)
    pred = predictor(sam)
    photos = _photos()
    want = []
    for im in photos:
        pred.set_image(im)
        want.append((pred.features.clone(), pred.original_size, pred.input_size))
    calls = _counted(sam)
    got = encode_images(pred, photos, batch)
    assert calls == [min(batch, len(photos) - s) for s in range(0, len(photos), batch)]
    for g, (f, original, inp) in zip(got, want):
        assert g["features"].shape == f.shape == (1, 32, 16, 16) and g["features"].dtype == torch.float32
        torch.testing.assert_close(g["features"], f, rtol=1e-4, atol=1e-5)
        assert g["original_size"] == tuple(original) and g["input_size"] == tuple(inp)


def test_a_predictor_set_from_an_entry_decodes_as_after_set_image():
    sam = build_tiny_sam(image_size=256)
    a, b = predictor(sam), predictor(sam)
    im = _photos()[0]
    a.set_image(im)
    set_predictor_features(b, encode_images(b, [im], 1)[0])
    assert b.is_image_set and b.original_size == a.original_size and b.input_size == a.input_size
    box = np.array([5, 5, 30, 25], np.float32)
    ma, _, _ = a.predict(box=box, multimask_output=False, return_logits=True)
    mb, _, _ = b.predict(box=box, multimask_output=False, return_logits=True)
    np.testing.assert_allclose(ma, mb, rtol=1e-4, atol=1e-4)


def test_bad_batch_and_bad_images_are_refused():
    pred = predictor(build_tiny_sam(image_size=256))
    with pytest.raises(ValueError, match="batch must be >= 1"):
        encode_images(pred, _photos(), 0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        encode_images(pred, [np.zeros((20, 20), np.uint8)], 2)
    assert encode_images(pred, [], 4) == []
