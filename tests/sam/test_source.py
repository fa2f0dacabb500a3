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


def _counting_encoder(source):
    """Batch sizes of the source's SAM image-encoder calls."""
    sizes = []
    source.sam.image_encoder.register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    return sizes


def _photos(n, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (32, 48, 3)).astype(np.uint8) for _ in range(n)]


def test_primed_photos_are_encoded_in_batches_and_not_again():
    source = LiveSam(build_tiny_sam(image_size=256))
    plain = LiveSam(build_tiny_sam(image_size=256))
    photos = _photos(3)
    sizes = _counting_encoder(source)
    assert source.prime(photos, 2) == 3
    assert sizes == [2, 1]
    for im in photos:
        got = source.predictor(im).features
        want = plain.predictor(im).features
        assert np.allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    assert sizes == [2, 1]                          # no photo encoded again
    source.forget_image()
    source.predictor(photos[0])                     # a used entry is gone: encoded as usual
    assert sizes == [2, 1, 1]


def test_prime_skips_repeats_and_drops_stale_entries():
    source = LiveSam(build_tiny_sam(image_size=256))
    sizes = _counting_encoder(source)
    a, b, c = _photos(3, seed=2)
    assert source.prime([a, a.copy(), b], 4) == 2 and sizes == [2]
    assert source.prime([b, c], 4) == 1 and sizes == [2, 1]    # b is still primed; a is dropped
    source.predictor(a)
    assert sizes == [2, 1, 1]


def test_prime_reads_and_fills_the_disk_cache(tmp_path):
    from sam_sr.sam.cache import SamCache
    cache = SamCache(tmp_path, "tiny")
    first = LiveSam(build_tiny_sam(image_size=256), cache=cache)
    a, b = _photos(2, seed=3)
    assert first.prime([a, b], 2) == 2
    assert cache.has(a, "embedding") and cache.has(b, "embedding")
    second = LiveSam(build_tiny_sam(image_size=256), cache=cache)
    sizes = _counting_encoder(second)
    assert second.prime([a, b], 2) == 0
    second.predictor(a)
    assert sizes == [] and cache.hits == 1
    np.testing.assert_allclose(second.predictor(b).features.numpy(), first.predictor(b).features.numpy(),
                               rtol=1e-6, atol=1e-6)
