"""SAM-SR input construction (v1, v2.1, v2.2), the SAM cache, and the variants' forward passes."""
import numpy as np
import pytest
import torch

from sam_sr import Refiner, SamSrError
from sam_sr.checkpoint import save_checkpoint
from sam_sr.sam import build_tiny_sam, mask_generator, predictor
from sam_sr.sam.cache import SamCache, image_key
from sam_sr.sam.source import LiveSam
from sam_sr.sam.stage import SamInputs
from sam_sr.variants import build_model, get_variant
from sam_sr.variants.v1 import V1Config, v1_mask
from sam_sr.variants.v2_1 import sam_rgb_map
from sam_sr.variants.v2_2 import sample_points, v22_mask
from tests.conftest import TINY


def _rect(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return {"segmentation": m, "area": int(m.sum())}


def test_rgb_map_paints_large_masks_first():
    big, small = _rect((20, 30), 0, 20, 0, 30), _rect((20, 30), 5, 10, 5, 10)
    rgb = sam_rgb_map([small, big], (20, 30), seed=3)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert (rgb[7, 7] != rgb[0, 0]).any()          # the small mask stays visible on top
    assert np.array_equal(rgb, sam_rgb_map([big, small], (20, 30), seed=3))
    assert (sam_rgb_map([], (4, 4)) == 0).all()


def test_v1_union_of_covered_masks():
    shape = (40, 40)
    coarse = np.zeros(shape, bool)
    coarse[10:30, 10:31] = True
    inside = _rect(shape, 10, 30, 10, 30)      # fully covered -> kept
    outside = _rect(shape, 0, 5, 0, 40)        # not covered -> dropped
    mask, info = v1_mask(coarse, [inside, outside], V1Config(min_cover=0.5, deformation_max=0.3))
    assert info["used_sam"] and info["kept"] == 1
    assert np.array_equal(mask, inside["segmentation"])
    assert info["deformation"] == pytest.approx(1 - 400 / 420)


def test_v1_fallbacks():
    shape = (40, 40)
    sparse = np.zeros(shape, bool)
    sparse[np.arange(40), np.arange(40)] = True          # a thin diagonal line: 40 / 1600 of its box
    m, info = v1_mask(sparse, [_rect(shape, 0, 40, 0, 40)], V1Config(sparsity_min=0.1))
    assert not info["used_sam"] and "sparse" in info["reason"] and np.array_equal(m, sparse)
    coarse = np.zeros(shape, bool)
    coarse[10:20, 10:20] = True
    grow = _rect(shape, 5, 25, 5, 25)                     # covers the coarse mask, but is 4x larger
    m, info = v1_mask(coarse, [grow], V1Config(min_cover=0.2, deformation_max=0.3))
    assert not info["used_sam"] and "deforms" in info["reason"] and np.array_equal(m, coarse)
    m, info = v1_mask(coarse, [grow], V1Config(min_cover=0.2, deformation_max=0.9))
    assert info["used_sam"]
    m, info = v1_mask(np.zeros(shape, bool), [grow])
    assert info["reason"] == "empty coarse mask"


def test_points_are_sampled_inside():
    c = np.zeros((30, 40), bool)
    c[5:25, 10:30] = True
    pts = sample_points(c, 9, np.random.default_rng(0))
    assert pts.shape == (9, 2) and all(c[int(y), int(x)] for x, y in pts)
    with pytest.raises(SamSrError):
        sample_points(np.zeros((5, 5), bool), 3, np.random.default_rng(0))


class ScoredPredictor:
    def __init__(self, shape):
        self.shape, self.calls = shape, 0

    def set_image(self, image):
        pass

    def predict(self, point_coords, point_labels, multimask_output):
        self.calls += 1
        a = np.zeros((3, *self.shape), bool)
        a[1, :10] = True          # best candidate: top rows
        a[2] = True
        return a, np.array([0.1, 0.9, 0.3]), None


def test_v22_merges_best_masks_by_predicted_iou():
    c = np.zeros((20, 20), bool)
    c[5:15, 5:15] = True
    p = ScoredPredictor((20, 20))
    vote = v22_mask(p, np.zeros((20, 20, 3), np.uint8), c, n_points=9)
    assert p.calls == 3 and vote.dtype == np.float32
    assert np.allclose(vote[:10], 1) and (vote[10:] == 0).all()
    with pytest.raises(SamSrError):
        v22_mask(p, np.zeros((20, 20, 3), np.uint8), c, n_points=4)


def test_cache_roundtrip_and_model_keying(tmp_path):
    sam = build_tiny_sam()
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    gen = mask_generator(sam, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    cache = SamCache(tmp_path, "tiny-a")
    first = cache.masks(image, gen.generate)
    assert first, "the tiny SAM should give some masks"
    calls = []
    again = cache.masks(image, lambda im: calls.append(1) or [])
    assert not calls and cache.hits == 1 and cache.misses == 1
    assert len(first) == len(again)
    assert all(np.array_equal(a["segmentation"], b["segmentation"]) for a, b in zip(first, again))
    other = SamCache(tmp_path, "tiny-b")                    # another SAM model never reads it
    assert other.masks(image, lambda im: []) == [] and other.misses == 1
    assert (tmp_path / "tiny-a" / f"{image_key(image)}.masks.npz").is_file()
    pred = predictor(sam)
    cache.set_predictor_image(pred, image)
    ref = pred.features.clone()
    pred2 = predictor(sam)
    cache.set_predictor_image(pred2, image)                 # from the cache: no encoder run
    assert torch.allclose(pred2.features, ref, atol=1e-2) and pred2.is_image_set
    # stored as computed (float32): a run that reads the cache refines exactly as one that filled it
    # (with float16, as before, a decision or two flipped between the two)
    assert torch.equal(pred2.features, ref) and pred2.features.dtype == torch.float32
    (tmp_path / "tiny-a" / f"{image_key(image)}.masks.npz").write_bytes(b"broken")
    with pytest.raises(SamSrError, match="corrupt SAM cache"):
        cache.masks(image, gen.generate)


@pytest.mark.parametrize("variant,extra", [("v1", 0), ("v2.1", 3), ("v2.2", 1)])
def test_variants_forward_with_sam_inputs(tmp_path, variant, extra):
    model = build_model(variant, dict(TINY)).eval()
    assert model.config.extra_channels == extra and model.variant == variant
    ckpt = tmp_path / f"{variant}.pt"
    save_checkpoint(ckpt, model, variant, model.config.to_dict())
    pipe = SamInputs(get_variant(variant).stage({"n_points": 3} if variant == "v2.2" else None),
                     LiveSam(build_tiny_sam(), points_per_side=4))
    r = Refiner(model, "cpu", sam_inputs=pipe)
    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    coarse = np.zeros((48, 64), np.uint8)
    coarse[10:40, 15:50] = 255
    out = r.refine(image, coarse)
    assert out.shape == (48, 64) and set(np.unique(out)) <= {0, 255}
    if extra:
        with pytest.raises(SamSrError, match="needs SAM inputs"):
            Refiner(model, "cpu")
        with pytest.raises(SamSrError, match="needs --sam-type"):
            Refiner.from_checkpoint(ckpt)
    with pytest.raises(SamSrError, match="extra_channels"):
        build_model(variant, {**TINY, "extra_channels": extra + 1})
