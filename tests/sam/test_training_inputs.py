"""Training the SAM-SR variants on cached SAM outputs: precompute, dataset items, training steps,
and v3 inference through the cascade. Uses a tiny random SAM built from segment_anything's modules
(the real MobileSAM is exercised in tests/test_sam.py)."""
import albumentations as A
import numpy as np
import pytest
import torch

from sam_sr import Refiner, SamSrError
from sam_sr.config import load_config
from sam_sr.data import CoarseMaskSynthesizer, RefinementDataset, load_samples
from sam_sr.imaging.read import read_image
from sam_sr.sam import build_tiny_sam
from sam_sr.sam.cache import SamCache, model_tag
from sam_sr.sam.features import sample_embedding
from sam_sr.sam.precompute import precompute
from sam_sr.sam.source import CachedSam, LiveSam
from sam_sr.sam.stage import SamInputs, SamTrainingInputs
from sam_sr.training import train
from sam_sr.training.losses import sample_query_points
from sam_sr.variants import build_model, get_variant
from tests.conftest import TINY, save_pair


def _training_inputs(variant, cache, points_per_side=4):
    return SamTrainingInputs(get_variant(variant).stage(),
                             CachedSam(cache, points_per_side=points_per_side))


V3_SMALL = {"sam_channels": 32, "cnn_channels": [8, 8, 8], "sam_proj": 8, "heads": 2, "window": 4,
            "fusion_channels": 16, "decoder_hidden": [16, 16]}


@pytest.fixture
def cached(tmp_path):
    """A 4-image dataset, a file standing in for the SAM checkpoint (it only keys the cache), and the
    cache filled by precompute() with the tiny SAM."""
    for i in range(4):
        save_pair(tmp_path / "data" / "images", tmp_path / "data" / "masks", f"{i}", i)
    ckpt = tmp_path / "sam.pt"
    ckpt.write_bytes(b"stand-in for a SAM checkpoint: keys the cache")
    cache = SamCache(tmp_path / "cache", model_tag("vit_t", ckpt))
    samples = load_samples({"layout": "generic", "root": str(tmp_path / "data")})
    sam = build_tiny_sam()
    first = precompute(sam, [s.image for s in samples], cache, points_per_side=4)
    return tmp_path, ckpt, cache, samples, first


def test_precompute_fills_the_cache_once(cached):
    tmp_path, ckpt, cache, samples, first = cached
    assert first["computed"] == 4 and first["skipped"] == 0
    image = read_image(samples[0].image)
    assert cache.has(image, "embedding") and cache.has(image, "masks-p4")
    assert not cache.has(image, "masks-p8")            # other grid settings are other entries
    again = precompute(build_tiny_sam(), [s.image for s in samples], cache, points_per_side=4)
    assert again["computed"] == 0 and again["skipped"] == 4
    assert cache.embedding(image)["features"].shape == (1, 32, 16, 16)


def test_training_inputs_need_the_cache(tmp_path):
    cache = SamCache(tmp_path, "empty")
    image = np.zeros((32, 32, 3), np.uint8)
    coarse = np.zeros((32, 32), np.float32)
    coarse[8:24, 8:24] = 1
    for variant in ("v1", "v2.1", "v2.2", "v3.1"):
        with pytest.raises(SamSrError, match="precompute_sam"):
            _training_inputs(variant, cache)(image, coarse, np.random.default_rng(0))
    with pytest.raises(SamSrError, match="does not use SAM"):
        get_variant("crm").stage()


@pytest.mark.parametrize("variant,channels", [("v1", None), ("v2.1", 3), ("v3.1", 32)])
def test_dataset_items_carry_sam_inputs(cached, variant, channels):
    tmp_path, ckpt, cache, samples, _ = cached
    inputs = _training_inputs(variant, cache)
    tf = A.Compose([A.HorizontalFlip(p=1.0)], additional_targets={"coarse": "mask", "extra": "mask",
                                                                   "coords": "mask"})
    ds = RefinementDataset(samples, CoarseMaskSynthesizer(), tf, sam_inputs=inputs)
    item = ds[0]
    assert item["image"].shape == (3, 96, 128)
    if channels is None:
        assert "extra" not in item
    elif channels == 3:
        assert item["extra"].shape == (3, 96, 128) and 0 <= item["extra"].min() <= item["extra"].max() <= 1
    else:
        # the embedding is read at the crop's stride-8 cells (pixel 8k + 4); after the flip, crop
        # column j shows image column W - 1 - j, whose centre is at x = W - 1 - j + 0.5
        emb = torch.from_numpy(cache.embedding(read_image(samples[0].image))["features"].astype(np.float32))
        ys = torch.arange(12, dtype=torch.float32) * 8 + 4.5
        xs = 127 - (torch.arange(16, dtype=torch.float32) * 8 + 4) + 0.5
        ref = sample_embedding(emb, (96, 128), *torch.meshgrid(ys, xs, indexing="ij"))
        assert item["extra"].shape == (32, 12, 16)
        assert torch.allclose(item["extra"], ref, atol=1e-5)


@pytest.mark.parametrize("variant", ["v2.1", "v3.3"])
def test_sam_variants_train_on_the_cache(cached, variant):
    tmp_path, ckpt, cache, _, _ = cached
    cfg = load_config(None, [f"train.out_dir={tmp_path / variant}", "train.iterations=3",
                             "train.batch_size=2", "train.log_every=1", "train.image_every=3",
                             "data.crop_size=64", "data.num_workers=0", "train.query_points=256",
                             f"sam.checkpoint={ckpt}", f"sam.cache={tmp_path / 'cache'}",
                             "sam.points_per_side=4"])
    cfg["variant"] = variant
    cfg["model"] = dict(TINY) if variant == "v2.1" else dict(V3_SMALL)
    cfg["data"]["datasets"] = [{"layout": "generic", "root": str(tmp_path / "data")}]
    result = train(cfg)
    assert result["iteration"] == 3 and np.isfinite(result["last_loss"])
    state = torch.load(tmp_path / variant / "final.pt", weights_only=False)
    assert state["variant"] == variant
    cfg["sam"]["checkpoint"] = None
    with pytest.raises(SamSrError, match="sam.checkpoint"):
        train(cfg)


def test_v3_refines_through_the_cascade_with_sam_embeddings(cached):
    tmp_path, ckpt, cache, samples, _ = cached
    torch.manual_seed(0)
    model = build_model("v3.4", V3_SMALL).eval()
    pipe = SamInputs(get_variant("v3.4").stage(), LiveSam(build_tiny_sam(), cache=cache))
    r = Refiner(model, "cpu", sam_inputs=pipe)
    image = read_image(samples[1].image)
    coarse = np.zeros(image.shape[:2], np.uint8)
    coarse[20:70, 30:100] = 255
    hits = cache.hits
    out = r.refine(image, coarse)
    assert out.shape == image.shape[:2] and set(np.unique(out)) <= {0, 255}
    assert cache.hits == hits + 1                         # the embedding came from the cache
    # small images run one full-resolution step; forcing a 2-step cascade also works
    r2 = Refiner(model, "cpu", r.cascade.replace(scales=(0.5, 1.0), min_size=8), sam_inputs=pipe)
    assert r2.refine(image, coarse).shape == image.shape[:2]
    with pytest.raises(SamSrError, match="needs SAM inputs"):
        Refiner(model, "cpu")


def test_boundary_sampling_concentrates_points():
    gt = torch.zeros(2, 1, 64, 64)
    gt[:, :, 16:48, 16:48] = 1
    idx = sample_query_points(gt, gt.clone(), 400, 0.75, band=2, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (2, 400) and idx.dtype == torch.int64
    r, c = idx // 64, idx % 64
    near = ((r - 16).abs() <= 2) | ((r - 47).abs() <= 2) | ((c - 16).abs() <= 2) | ((c - 47).abs() <= 2)
    inside_box = (r >= 14) & (r <= 49) & (c >= 14) & (c <= 49)
    assert (near & inside_box)[:, :300].all()             # the boundary share lies in the band
    assert (near & inside_box).float().mean() < 0.95      # the rest is spread over the crop
