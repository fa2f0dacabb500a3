"""Correctness of the query-selection modes, patched fusion and encoder tiling (issue 3)."""
import numpy as np
import pytest
import torch

from sam_sr import CascadeConfig, SamSrError
from sam_sr.inference.cascade import cascade_refine
from sam_sr.inference.encode import encode_tiled
from sam_sr.inference.query import DecodeMode, _levels, decode_step
from sam_sr.variants import build_model
from tests.conftest import TINY

H, W = 90, 123
BOUNDS = (-0.9, -0.95, 0.9, 0.92)


@pytest.fixture(scope="module")
def setup():
    """A tiny model whose decoded map has a real boundary: a smooth image with a disk, and the
    output bias shifted so that half of the pixels fall on each side of 0.5."""
    torch.manual_seed(0)
    model = build_model("crm", TINY).eval()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 80), indexing="ij")
    disk = ((yy ** 2 + xx ** 2) < 0.4).float()
    img = torch.stack([disk * 0.8 + 0.1, 0.5 * (xx + 1), 0.5 * (yy + 1)])[None]
    with torch.no_grad():
        proj = model.encode(img, disk[None, None])
        logits = model.decoder.query_grid(proj, H, W, BOUNDS)
        model.decoder.mlp[-1].bias -= logits.median()
        full, n = decode_step(model, proj, (H, W), BOUNDS, torch.zeros(H, W), DecodeMode())
    assert n == H * W
    fg = float((full >= 0.5).float().mean())
    assert 0.2 < fg < 0.8, fg
    previous = torch.zeros(H, W)
    previous[20:60, 30:90] = 1.0
    return model, proj, full, previous


def _run(setup, mode):
    model, proj, _, previous = setup
    with torch.no_grad():
        return decode_step(model, proj, (H, W), BOUNDS, previous, DecodeMode.parse(mode))


def _corners(n_levels_r, n_levels_c, i, j):
    r = n_levels_r[np.searchsorted(n_levels_r, i, side="right") - 1]
    r1 = n_levels_r[min(np.searchsorted(n_levels_r, i, side="left"), len(n_levels_r) - 1)]
    c = n_levels_c[np.searchsorted(n_levels_c, j, side="right") - 1]
    c1 = n_levels_c[min(np.searchsorted(n_levels_c, j, side="left"), len(n_levels_c) - 1)]
    return [(r, c), (r, c1), (r1, c), (r1, c1)]


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_strided_equals_full_where_neighbours_agree(setup, stride):
    _, _, full, _ = setup
    out, n = _run(setup, f"strided:{stride}")
    full_np, out_np = full.numpy(), out.numpy()
    decoded = np.abs(out_np - full_np) < 1e-5
    lr, lc = _levels(H, stride).numpy(), _levels(W, stride).numpy()
    assert decoded[np.ix_(lr, lc)].all()          # the stride-N grid is decoded exactly
    fb = full_np >= 0.5
    for i, j in zip(*np.nonzero(~decoded)):       # every other pixel: its 4 decoded neighbours agree
        sides = {bool(fb[r, c]) for r, c in _corners(lr, lc, i, j)}
        assert sides == {bool(out_np[i, j] >= 0.5)}
    assert n < H * W


@pytest.mark.parametrize("top", [4, 16])
def test_hierarchical_matches_full(setup, top):
    _, _, full, _ = setup
    out, n = _run(setup, f"hierarchical:{top}")
    fb = full.numpy() >= 0.5
    decoded = np.abs(out.numpy() - full.numpy()) < 1e-5
    lr, lc = _levels(H, top).numpy(), _levels(W, top).numpy()
    assert decoded[np.ix_(lr, lc)].all()
    assert n < H * W
    assert ((out.numpy() >= 0.5) == fb).mean() > 0.8  # random weights: a noisy map near 0.5
    # at stride 1 nothing is left undecided: every pixel is decoded or shares its neighbours' side
    out1, n1 = _run(setup, "hierarchical:1")
    assert n1 == H * W and torch.allclose(out1, full, atol=1e-5)


def test_seeded_hierarchical_decodes_only_near_the_previous_contour(setup, monkeypatch):
    """The seeded (last) step decodes the stride-N grid only within SEED_BAND px of the previous
    step's contour, keeps the previous value far from it, and equals the unseeded step when the
    band covers the whole output."""
    import cv2

    import sam_sr.inference.query as query
    model, proj, full, previous = setup
    top = 4
    mode = DecodeMode.parse(f"hierarchical:{top}")
    monkeypatch.setattr(query, "SEED_BAND", 8)
    with torch.no_grad():
        out, n = decode_step(model, proj, (H, W), BOUNDS, previous, mode, seeded=True)
    lr, lc = _levels(H, top).numpy(), _levels(W, top).numpy()
    grid_prev = previous.numpy()[np.ix_(lr, lc)].astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))     # 8 px // stride 4 = 2 grid cells
    band = cv2.dilate(grid_prev, k) != cv2.erode(grid_prev, k)
    grid_out, grid_full = out.numpy()[np.ix_(lr, lc)], full.numpy()[np.ix_(lr, lc)]
    assert band.any() and (~band).any()
    assert np.allclose(grid_out[band], grid_full[band], atol=1e-5)       # decoded near the contour
    assert np.array_equal(grid_out[~band], grid_prev[~band].astype(np.float32))   # kept far from it
    far = torch.ones(H, W, dtype=torch.bool)                              # > 3 grid cells away: untouched
    far_grid = cv2.dilate(band.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    for i, j in zip(*np.nonzero(~far_grid)):
        far[max(0, lr[i] - top):lr[i] + top + 1, max(0, lc[j] - top):lc[j] + top + 1] = False
    assert far.any() and torch.equal(out[far], previous[far])
    with torch.no_grad():
        plain, n_plain = decode_step(model, proj, (H, W), BOUNDS, previous, mode)
    assert n < n_plain
    monkeypatch.setattr(query, "SEED_BAND", 10 ** 4)
    with torch.no_grad():
        wide, _ = decode_step(model, proj, (H, W), BOUNDS, previous, mode, seeded=True)
    assert torch.allclose(wide, plain, atol=1e-6)


def test_bbox_and_contour_decode_only_their_region(setup):
    _, _, full, previous = setup
    out, n = _run(setup, "bbox:5")
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[15:65, 25:95] = True
    assert n == int(inside.sum())
    assert torch.allclose(out[inside], full[inside], atol=1e-5)
    assert torch.equal(out[~inside], previous[~inside])
    out, n = _run(setup, "contour:3")
    import cv2
    prev = previous.numpy().astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    band = torch.from_numpy(cv2.dilate(prev, k) != cv2.erode(prev, k))
    assert n == int(band.sum()) > 0
    assert torch.allclose(out[band], full[band], atol=1e-5)
    assert torch.equal(out[~band], previous[~band])


def test_empty_previous_mask_in_bbox_mode(setup):
    model, proj, _, _ = setup
    out, n = decode_step(model, proj, (H, W), BOUNDS, torch.zeros(H, W), DecodeMode.parse("bbox"))
    assert n == 0 and float(out.max()) == 0.0


def test_mode_parsing():
    assert DecodeMode.parse("strided:4") == DecodeMode("strided", 4)
    assert DecodeMode.parse("hierarchical") == DecodeMode("hierarchical", 4)
    assert str(DecodeMode.parse("contour")) == "contour:16"
    for bad in ("nope", "strided:x", "strided:0", "hierarchical:12", "bbox:-1"):
        with pytest.raises(SamSrError):
            DecodeMode.parse(bad)


def test_patched_fusion_equals_unpatched(tiny_model):
    torch.manual_seed(0)
    img, mask = torch.rand(1, 3, 152, 96), (torch.rand(1, 1, 152, 96) > 0.5).float()
    with torch.no_grad():
        a = tiny_model.encode(img, mask, fusion_patches=0)
        for n in (1, 3, 8, 1000):
            assert (tiny_model.encode(img, mask, fusion_patches=n) - a).abs().max() <= 1e-5
    a = cascade_refine(tiny_model, img, mask, CascadeConfig(fusion_patches=0, min_size=64))
    b = cascade_refine(tiny_model, img, mask, CascadeConfig(fusion_patches=5, min_size=64))
    assert (a - b).abs().max() <= 1e-5


def test_patched_fusion_refuses_training_mode():
    model = build_model("crm", TINY).train()
    feats = model.encoder(torch.rand(1, 4, 32, 32))
    with pytest.raises(RuntimeError, match="eval mode"):
        model.fusion.forward_patched(feats, 2)


@pytest.mark.slow
def test_tiled_encoder_equals_untiled_within_tolerance(tiny_model):
    torch.manual_seed(0)
    img = torch.rand(1, 3, 304, 400)
    mask = torch.zeros(1, 1, 304, 400)
    mask[..., 60:250, 80:330] = 1
    with torch.no_grad():
        a = tiny_model.encode(img, mask)
        b = encode_tiled(tiny_model, img, mask, tile=192, overlap=48)
    assert a.shape == b.shape
    assert (a - b).abs().max() <= 1e-4
    with pytest.raises(ValueError):
        encode_tiled(tiny_model, img[..., :301, :], mask[..., :301, :], tile=192)
    full = cascade_refine(tiny_model, img, mask, CascadeConfig(min_size=64))
    tiled = cascade_refine(tiny_model, img, mask, CascadeConfig(min_size=64, encoder_tile=192,
                                                                 tile_overlap=48))
    assert ((full >= 0.5) == (tiled >= 0.5)).float().mean() >= 0.999
    assert (full - tiled).abs().max() <= 1e-3


def test_cascade_reports_decoded_points(tiny_model):
    cfg = CascadeConfig(min_size=32, decode="strided:4")
    img, mask = torch.rand(1, 3, 64, 96), torch.zeros(1, 1, 64, 96)
    mask[..., 10:50, 20:70] = 1
    out, info = cascade_refine(tiny_model, img, mask, cfg, return_info=True)
    assert info["steps"][-1] == (64, 96)
    assert 0 < info["decoded_points"] < 64 * 96 + 32 * 48
    assert cfg == CascadeConfig(min_size=32, decode="strided:4")      # the settings are left as they were
    assert torch.equal(out, cascade_refine(tiny_model, img, mask, cfg))


@pytest.mark.parametrize("q", [0.3, 0.7])
def test_margin_keeps_the_previous_value_where_the_model_is_unsure(setup, q):
    model, proj, full, previous = setup
    margin = float((full - 0.5).abs().quantile(q))   # the tiny model's probabilities lie close to 0.5
    with torch.no_grad():
        gated, _ = decode_step(model, proj, (H, W), BOUNDS, previous, DecodeMode(), margin=margin)
    unsure = (full - 0.5).abs() < margin
    assert unsure.any() and (~unsure).any()
    assert torch.equal(gated[unsure], previous[unsure])
    assert torch.equal(gated[~unsure], full[~unsure])


def test_upsample_to_refines_small_images_at_the_larger_size(tiny_model):
    from sam_sr.inference.cascade import resize_image
    from sam_sr.models.base import resize_mask
    torch.manual_seed(0)
    img = torch.rand(1, 3, 30, 40)
    mask = (torch.rand(1, 1, 30, 40) > 0.5).float()
    cfg = CascadeConfig(scales=(1.0,), upsample_to=80)
    out, info = cascade_refine(tiny_model, img, mask, cfg, return_info=True)
    assert out.shape == (1, 1, 30, 40) and info["steps"] == [(60, 80)]
    big = cascade_refine(tiny_model, resize_image(img, (60, 80)), resize_mask(mask, (60, 80)),
                         CascadeConfig(scales=(1.0,)))
    assert torch.allclose(out, resize_mask(big, (30, 40)), atol=1e-6)
    # images already at least that large are refined as they are
    same = CascadeConfig(scales=(1.0,), upsample_to=40)
    assert cascade_refine(tiny_model, img, mask, same, return_info=True)[1]["steps"] == [(30, 40)]


def test_flip_averages_the_pass_on_the_mirrored_inputs(tiny_model):
    torch.manual_seed(1)
    img = torch.rand(1, 3, 40, 56)
    mask = (torch.rand(1, 1, 40, 56) > 0.5).float()
    once = CascadeConfig(scales=(0.5, 1.0), min_size=8)
    plain, once_info = cascade_refine(tiny_model, img, mask, once, return_info=True)
    mirrored = cascade_refine(tiny_model, img.flip(-1), mask.flip(-1),
                              CascadeConfig(scales=(0.5, 1.0), min_size=8)).flip(-1)
    assert not torch.allclose(plain, mirrored, atol=1e-4)   # the model is not mirror-symmetric
    cfg = CascadeConfig(scales=(0.5, 1.0), min_size=8, flip=True)
    out, info = cascade_refine(tiny_model, img, mask, cfg, return_info=True)
    assert torch.allclose(out, (plain + mirrored) / 2, atol=1e-6)
    assert once_info["decoded_points"] > 0 and info["decoded_points"] == 2 * once_info["decoded_points"]


@pytest.mark.parametrize("bad", [{"margin": 0.5}, {"margin": -0.1}, {"upsample_to": -1}, {"flip": "yes"}])
def test_bad_margin_or_upsample_settings(bad):
    with pytest.raises(SamSrError):
        CascadeConfig(**bad)
