"""sam-prompt: prompts derived from a coarse mask, SAM's decoding, the low-resolution frame."""
import numpy as np
import pytest
import torch

from sam_sr import SamSrError
from sam_sr.sam import build_tiny_sam, predictor
from sam_sr.sam.prompt import (
    LOWRES,
    PromptConfig,
    decode,
    dense_prompt,
    derive_prompts,
    frame_shape,
    image_to_lowres,
    lowres_shape,
    lowres_to_image,
    sam_prompt,
)


def _disk(h=120, w=160, cy=60, cx=60, r=30):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_frame_follows_segment_anything_resize():
    from segment_anything.utils.transforms import ResizeLongestSide
    for h, w in [(481, 321), (321, 481), (2328, 3492), (17, 1000)]:
        assert frame_shape(h, w) == ResizeLongestSide.get_preprocess_shape(h, w, 1024)
    assert lowres_shape(481, 321) == (256, 171)


def test_positive_point_is_the_deepest_pixel_and_box_is_tight():
    m = _disk()
    p = derive_prompts(m, PromptConfig(negative=False, mask=False))
    (x, y), = p["point_coords"]
    assert abs(x - 60.5) <= 1 and abs(y - 60.5) <= 1 and p["point_labels"].tolist() == [1]
    assert p["box"].tolist() == [30.0, 30.0, 91.0, 91.0]
    assert p["mask_input"] is None


def test_small_components_get_no_point_and_big_ones_do():
    m = _disk(cx=40, r=25) | _disk(cx=120, r=20) | _disk(cy=110, cx=150, r=3)
    p = derive_prompts(m, PromptConfig(negative=False, mask=False, box=False, min_component=0.1))
    xs = sorted(p["point_coords"][:, 0].round().tolist())
    assert len(xs) == 2 and abs(xs[0] - 40) <= 1 and abs(xs[1] - 120) <= 1


def test_negative_point_lies_in_the_box_far_from_the_mask():
    # an L-shaped mask: its box's empty corner is the background farthest from the mask
    m = np.zeros((100, 100), bool)
    m[10:90, 10:30] = True
    m[70:90, 10:90] = True
    p = derive_prompts(m, PromptConfig(negative_min_px=1.0, mask=False))
    labels = p["point_labels"].tolist()
    assert labels.count(0) == 1
    x, y = p["point_coords"][labels.index(0)]
    assert 30 <= x <= 90 and 10 <= y <= 70 and not m[int(y), int(x)]
    assert x > 60 and y < 40   # the corner away from both arms
    # a disk's box corners lie 0.41 r from it: 79 SAM-frame px here (x6.4), so a 100 px minimum drops them
    q = derive_prompts(_disk(), PromptConfig(negative_min_px=100, mask=False))
    assert q["point_labels"].tolist() == [1]


def test_dense_prompt_is_signed_and_grows_with_distance_from_the_contour():
    low = np.zeros((LOWRES, LOWRES), np.float32)
    low[64:192, 64:192] = 1
    cfg = PromptConfig(logit_min=15, logit_max=30, sigma=4)
    d = dense_prompt(low, cfg)
    assert d[128, 128] == pytest.approx(30, abs=0.01) and d[0, 0] == pytest.approx(-30, abs=0.01)
    assert 15 <= d[64, 128] < 20 and -20 < d[63, 128] <= -15
    assert np.all(np.abs(d) >= 15) and np.all(np.abs(d) <= 30)


def test_lowres_roundtrip_places_the_image_top_left():
    m = np.zeros((200, 100), np.float32)
    m[:, :50] = 1
    low = image_to_lowres(m)
    lh, lw = lowres_shape(200, 100)
    assert (lh, lw) == (256, 128) and low[:, 128:].max() == 0 and low[:, :63].min() == 1
    back = lowres_to_image(np.where(low > 0.5, 10.0, -10.0), 200, 100) > 0
    assert back.shape == (200, 100) and (back == (m > 0.5)).mean() > 0.98


@pytest.fixture(scope="module")
def tiny_predictor():
    p = predictor(build_tiny_sam(image_size=1024))
    rng = np.random.default_rng(0)
    p.set_image(rng.integers(0, 255, (120, 160, 3)).astype(np.uint8))
    return p


def test_decode_equals_sam_predictors_low_resolution_output(tiny_predictor):
    prompts = derive_prompts(_disk(), PromptConfig())
    low, scores = decode(tiny_predictor, **prompts)
    _, s2, low2 = tiny_predictor.predict(**prompts, multimask_output=True, return_logits=True)
    assert low.shape[0] == 3 and np.allclose(low, low2, atol=1e-5) and np.allclose(scores, s2, atol=1e-6)


@pytest.mark.parametrize("select", ["coarse_iou", "predicted_iou"])
def test_sam_prompt_returns_one_candidate_per_round(tiny_predictor, select):
    logits, info = sam_prompt(tiny_predictor, _disk(), PromptConfig(rounds=2, select=select))
    assert logits.shape == (LOWRES, LOWRES) and logits.dtype == np.float32
    assert info["rounds"] in (1, 2) and 0 <= info["candidate"] < 3
    if select == "predicted_iou":   # the chosen candidate has the highest predicted IoU of its round
        _, scores = decode(tiny_predictor, **derive_prompts(_disk(), PromptConfig()))
        if info["rounds"] == 1:
            assert info["predicted_iou"] == pytest.approx(float(scores.max()), abs=1e-6)


def test_empty_mask_and_unset_image(tiny_predictor):
    logits, info = sam_prompt(tiny_predictor, np.zeros((120, 160), bool))
    assert info["candidate"] == -1 and (logits < 0).all()
    from segment_anything import SamPredictor
    with pytest.raises(SamSrError, match="no image set"):
        sam_prompt(SamPredictor(build_tiny_sam(image_size=1024)), _disk())


def test_elastic_box_grows_only_where_the_embedding_resembles_the_mask():
    m = np.zeros((256, 256), bool)
    m[96:160, 96:160] = True
    emb = torch.zeros(1, 8, 64, 64)
    emb[0, 0] = 1.0          # background direction everywhere
    emb[0, 0, 24:40, 24:48] = 0
    emb[0, 1, 24:40, 24:48] = 1.0   # the object's direction inside the mask and to its right
    cfg = PromptConfig(box_expand=0.5, box_similarity=0.9, mask=False, points=False, negative=False)
    box = derive_prompts(m, cfg, emb)["box"]
    plain = derive_prompts(m, PromptConfig(mask=False, points=False, negative=False))["box"]
    assert box[0] == plain[0] and box[1] == plain[1] and box[3] == plain[3]
    assert box[2] > plain[2] and box[2] <= plain[2] + 0.5 * 64 + 1e-3


def test_bad_settings_are_refused():
    with pytest.raises(SamSrError, match="rounds"):
        PromptConfig(rounds=0)
    with pytest.raises(SamSrError, match="select"):
        PromptConfig(select="best")
    with pytest.raises(SamSrError, match="at least one"):
        PromptConfig(points=False, box=False, mask=False)
    with pytest.raises(SamSrError, match="unknown sam-prompt settings"):
        PromptConfig.from_dict({"round": 2})


def test_a_memo_computes_the_masks_prompts_once_with_equal_results(monkeypatch):
    from sam_sr.sam import prompt as prompt_mod
    m = _disk()
    cfgs = [PromptConfig(mask=False), PromptConfig(), PromptConfig(negative_min_px=1.0)]
    plain = [derive_prompts(m, c) for c in cfgs]
    calls = []
    original = prompt_mod._geometry
    monkeypatch.setattr(prompt_mod, "_geometry", lambda mask, cfg: (calls.append(1), original(mask, cfg))[1])
    memo = {}
    memoised = [derive_prompts(m, c, memo=memo) for c in cfgs] + [derive_prompts(m, cfgs[0], memo=memo)]
    assert len(calls) == 2          # the first two settings share the point settings; the third differs
    for a, b in zip(plain + plain[:1], memoised):
        assert a.keys() == b.keys()
        for k in a:
            if a[k] is None:
                assert b[k] is None
            else:
                np.testing.assert_array_equal(a[k], b[k])
    memoised[0]["box"][0] = -1      # a caller's edit does not reach the memo
    np.testing.assert_array_equal(derive_prompts(m, cfgs[0], memo=memo)["box"], plain[0]["box"])
    other = m.copy()                 # another mask object: computed again
    derive_prompts(other, cfgs[0], memo=memo)
    assert len(calls) == 3


def _geometry_on_the_whole_photo(m, cfg):
    """The reference for ``_geometry``: every distance transform over the whole photo (how it was
    computed before the crops)."""
    import cv2
    h, w = m.shape
    scale = max(frame_shape(h, w)) / max(h, w)
    ys, xs = np.nonzero(m)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    pts, labels = [], []
    if cfg.points:
        n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        order = np.argsort(-areas)
        keep = [i + 1 for i in order if areas[i] >= cfg.min_component * areas[order[0]]]
        for k in keep[: cfg.max_points]:
            d = cv2.distanceTransform(np.pad((lab == k).astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
            y, x = np.unravel_index(int(np.argmax(d)), d.shape)
            pts.append((x + 0.5, y + 0.5))
            labels.append(1)
    if cfg.negative:
        x0, y0, x1, y1 = box.astype(int)
        bg = ~m[y0:y1, x0:x1]
        if bg.any():
            d = np.where(bg, cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 5)[y0:y1, x0:x1], 0)
            y, x = np.unravel_index(int(np.argmax(d)), d.shape)
            if d[y, x] * scale >= cfg.negative_min_px:
                pts.append((x0 + x + 0.5, y0 + y + 0.5))
                labels.append(0)
    return box, pts, labels


def _shapes():
    rng = np.random.default_rng(3)
    ring = _disk(r=40) & ~_disk(r=15)                     # a hole: the negative point's place
    border = np.zeros((90, 130), bool)
    border[:, :20] = True                                 # components touching the photo's border
    border[60:, 100:] = True
    border[30:40, 50:90] = True
    square = np.zeros((64, 64), bool)
    square[10:30, 10:30] = True                           # ties: many pixels equally deep
    square[40:50, 40:60] = True
    blobs = np.zeros((200, 300), bool)
    for cy, cx, r in rng.integers([20, 20, 3], [180, 280, 30], size=(12, 3)):
        blobs |= _disk(200, 300, cy, cx, r)
    noisy = rng.random((150, 170)) < 0.3                   # many tiny components
    return {"ring": ring, "border": border, "square": square, "blobs": blobs, "noisy": noisy,
            "pixel": np.pad(np.ones((1, 1), bool), ((5, 6), (7, 8)))}


@pytest.mark.parametrize("name", sorted(_shapes()))
@pytest.mark.parametrize("cfg", [PromptConfig(), PromptConfig(negative_min_px=0.0, min_component=0.0, max_points=20)])
def test_prompts_from_crops_equal_the_whole_photos(name, cfg):
    """The box and points computed on crops equal the whole photo's (distances, and the first
    deepest pixel in raster order)."""
    from sam_sr.sam.prompt import _geometry
    m = _shapes()[name]
    got, want = _geometry(m, cfg), _geometry_on_the_whole_photo(m, cfg)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:] and len(got[1]) > 0


def test_prompts_from_crops_equal_the_whole_photos_on_real_masks():
    """The same on the aeroplane's coarse mask and 20 sod ground-truth masks."""
    from sam_sr.imaging import read_mask
    from sam_sr.sam.prompt import _geometry
    from tests.conftest import SHARED_DATA
    files = [SHARED_DATA / "highres/aeroplane_coarse.png"] + sorted((SHARED_DATA / "sod/masks").glob("*.png"))[:20]
    if not files[0].is_file():
        pytest.skip(f"the real data is not at {SHARED_DATA}")
    for f in files:
        m = read_mask(f) >= 0.5
        for cfg in (PromptConfig(), PromptConfig(negative_min_px=0.0, min_component=0.0, max_points=20)):
            got, want = _geometry(m, cfg), _geometry_on_the_whole_photo(m, cfg)
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1:] == want[1:], f
