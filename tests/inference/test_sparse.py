"""Sparse full-resolution steps (sam_sr.inference.sparse): features computed only in the tiles the
decoded pixels read equal the dense path's, on synthetic inputs and on real photos.

Stated tolerance (README, performance section): the refined soft mask of a sparse run differs from
the dense run's by at most :data:`TOL` (float rounding: the same convolutions over differently shaped
windows may sum in another order).
"""
import numpy as np
import pytest
import torch

from sam_sr.data import load_samples
from sam_sr.errors import SamSrError
from sam_sr.inference import cascade
from sam_sr.inference.cascade import CascadeConfig, cascade_refine
from sam_sr.inference.padding import pad_geometry, pad_inputs, padded_window
from sam_sr.inference.sparse import SparseFeatures, rectangles
from sam_sr.models.receptive import receptive_field, window_is_exact
from sam_sr.variants import build_model
from tests.conftest import ROOT, SHARED_DATA, TINY, disk_photo, needs_shared

#: Largest absolute difference allowed between a sparse and a dense run's soft mask.
TOL = 1e-5

SHIPPED_ARCH = {"backbone": "resnet18", "out_indices": [0, 1, 3], "output_stride": 8,
                "branch_channels": [32, 32, 64], "fusion_channels": 128, "decoder_hidden": [32, 32, 32, 32],
                "mask_skip": True, "pixel_head": 16, "pixel_head_layers": 3}


def _tensors(h, w, seed=1):
    img, mask = disk_photo(h, w, seed=seed)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    return x, torch.from_numpy(mask > 0).float()[None, None]


def _randomise_norms(m):
    """Random batch-norm scales and shifts: at initialisation timm zeroes each residual block's last
    norm, which leaves the encoder a receptive field far smaller than its architecture's, and equality
    tests on it would not see a too-small context."""
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5, generator=g)
            mod.bias.data.uniform_(-0.2, 0.2, generator=g)
    return m.eval()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _randomise_norms(build_model("crm", {**TINY, "mask_skip": True, "pixel_head": 8}))


@pytest.mark.parametrize("hw,pad", [((37, 50), 8), ((5, 7), 16)])   # reflect, and replicate (too small)
def test_padded_window_equals_a_slice_of_the_padded_input(hw, pad):
    t = torch.rand(1, 3, *hw)
    (padded,), (top, left, hp, wp) = pad_inputs([t], pad)
    g = pad_geometry(*hw, pad)
    assert (g.top, g.left, g.hp, g.wp) == (top, left, hp, wp)
    assert g.mode == ("reflect" if hw[0] > pad else "replicate")
    for y0, y1, x0, x1 in [(0, hp, 0, wp), (0, 8, 0, 8), (hp - 8, hp, 8, wp), (3, 11, 5, 9)]:
        assert torch.equal(padded_window(t, g, y0, y1, x0, x1), padded[..., y0:y1, x0:x1])


def test_rectangles_cover_the_tiles_and_merge_only_when_windows_shrink():
    tiles = torch.tensor([[0, 0], [0, 1], [0, 2], [1, 1], [5, 9]])
    # no context: merging never saves pixels, the runs stay apart
    assert sorted(rectangles(tiles, 32, 0, 1000, 1000)) == [(0, 1, 0, 3), (1, 2, 1, 2), (5, 6, 9, 10)]
    # with context the two close runs share one window; the far tile keeps its own
    r = rectangles(tiles, 32, 64, 1000, 1000)
    assert sorted(r) == [(0, 2, 0, 3), (5, 6, 9, 10)]
    # a cap on the merged window's pixels keeps them apart
    assert len(rectangles(tiles, 32, 64, 1000, 1000, max_pixels=100)) == 3
    for rects in (r, rectangles(tiles, 8, 200, 64, 64)):
        covered = {(ty, tx) for a, b, c, d in rects for ty in range(a, b) for tx in range(c, d)}
        assert {tuple(t) for t in tiles.tolist()} <= covered


@pytest.mark.parametrize("arch", [TINY, SHIPPED_ARCH], ids=["tiny", "shipped"])
def test_context_holds_the_receptive_field_and_less_does_not(arch):
    torch.manual_seed(0)
    m = _randomise_norms(build_model("crm", arch))
    ctx = m.context
    assert ctx is not None and ctx % 8 == 0
    rf = receptive_field(m.encoder, m.encoder.in_channels)
    assert ctx >= max(rf.before, rf.after)

    def encode(x, core):
        return m.encode_window(x[:, :3], x[:, 3:], None, core)

    assert window_is_exact(encode, 4, ctx, tol=1e-5)
    # the check can fail: a window with half the context differs from the whole input
    assert not window_is_exact(encode, 4, ctx // 2 // 8 * 8, tol=1e-5)


def test_encode_window_rejects_unaligned_cores(model):
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(SamSrError, match="multiples of 8"):
        model.encode_window(x, x[:, :1], None, (4, 20, 0, 16))


@pytest.mark.parametrize("hw", [(200, 264), (120, 90)])
def test_sparse_features_equal_the_dense_map(model, hw):
    x, mask = _tensors(*hw)
    g = pad_geometry(*hw, 16)
    (pi, pm), _ = pad_inputs([x, mask], 16)
    with torch.no_grad():
        dense = model.encode(pi, pm)
    sparse = SparseFeatures(model, [x, mask, None], g, tile=32)
    assert sparse.shape == tuple(dense.shape)
    gen = torch.Generator().manual_seed(0)
    iy = torch.randint(0, dense.shape[2], (1, 300), generator=gen)
    ix = torch.randint(0, dense.shape[3], (1, 300), generator=gen)
    got = sparse.points(iy, ix)                              # computes the tiles read
    want = dense[0, :, iy[0], ix[0]].T[None]
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), float((got - want).abs().max())
    rows, cols = torch.arange(3, 11), torch.tensor([0, 5, dense.shape[3] - 1])
    assert torch.allclose(sparse.grid(rows, cols), dense[0][:, rows][:, :, cols].permute(1, 2, 0)[None], atol=1e-5)
    assert 0 < sparse.tiles_computed <= sparse.nty * sparse.ntx


def test_sparse_features_compute_only_the_tiles_read(model):
    x, mask = _tensors(256, 256)
    sparse = SparseFeatures(model, [x, mask, None], pad_geometry(256, 256, 0), tile=32)
    sparse.points(torch.tensor([[0]]), torch.tensor([[0]]))
    assert sparse.tiles_computed == 1
    assert sparse.encoded_pixels == (32 + model.context) ** 2   # one tile, its context clipped at the edge


@pytest.mark.parametrize("decode", ["contour:4", "contour:1", "bbox:8", "hierarchical:8"])
def test_sparse_cascade_equals_dense(model, decode, monkeypatch):
    # on an image this small the tiles' windows cover most of it and the cascade would stay dense:
    # force the sparse path to compare it
    monkeypatch.setattr(cascade, "SPARSE_SHARE", 10.0)
    x, mask = _tensors(420, 560, seed=2)
    base = CascadeConfig(scales=(0.5, 1.0), min_size=0, decode=decode, sparse_tile=32)
    d, dinfo = cascade_refine(model, x, mask, base.replace(sparse_tile=0), return_info=True)
    s, sinfo = cascade_refine(model, x, mask, base, return_info=True)
    assert not any(dinfo["sparse_steps"])
    assert sinfo["sparse_steps"] == [decode != "hierarchical:8", True], sinfo
    assert sinfo["decoded_points"] == dinfo["decoded_points"]
    assert float((d - s).abs().max()) <= TOL


def test_a_band_on_a_large_image_goes_sparse_and_encodes_less(model):
    x, mask = _tensors(1024, 1024, seed=4)
    mask[..., :300, :] = 0                                    # a smaller object: a shorter boundary
    base = CascadeConfig(scales=(0.25, 1.0), min_size=0, decode="contour:2", sparse_tile=128)
    d = cascade_refine(model, x, mask, base.replace(sparse_tile=0))
    s, info = cascade_refine(model, x, mask, base, return_info=True)
    assert info["sparse_steps"] == [False, True], info
    assert info["encoded_fraction"] < 0.8, info
    assert float((d - s).abs().max()) <= TOL


@pytest.mark.parametrize("side", [1024, 512])
def test_a_sparse_step_trims_the_heap_after_its_windows_where_the_photo_is_large(model, monkeypatch, side):
    from sam_sr.inference import heap
    events = []

    def trim(pixels=None):
        events.append(("trim", pixels))
        return heap.trim_heap(pixels)
    ensure = cascade.SparseFeatures.ensure

    def logged_ensure(self, tiles):
        ensure(self, tiles)
        events.append(("ensure", None))
    monkeypatch.setattr(cascade, "trim_heap", trim)
    monkeypatch.setattr(cascade.SparseFeatures, "ensure", logged_ensure)
    x, mask = _tensors(side, side, seed=4)
    mask[..., :side // 3, :] = 0
    base = CascadeConfig(scales=(0.25, 1.0), min_size=0, decode="contour:2", sparse_tile=128)
    s, info = cascade_refine(model, x, mask, base, return_info=True)
    assert info["sparse_steps"] == [False, True], info
    # one trim at the end of each step, and one right after the sparse step's windows, before its
    # decoding; each asked with the photo's pixels (glibc's call is skipped under TRIM_MIN_PIXELS)
    trims = [p for e, p in events if e == "trim"]
    first = [e for e, _ in events].index("ensure")
    assert trims == [side * side] * 3 and events[first + 1] == ("trim", side * side), events
    assert heap.trim_heap(side * side) == (side * side >= heap.TRIM_MIN_PIXELS and heap._malloc_trim() is not None)
    monkeypatch.undo()
    assert float((cascade_refine(model, x, mask, base) - s).abs().max()) == 0


def test_sparse_with_channels_last_and_pixel_tiles_equals_plain_dense(model, monkeypatch):
    x, mask = _tensors(300, 400, seed=3)
    base = CascadeConfig(scales=(0.5, 1.0), min_size=0, decode="contour:2")
    monkeypatch.setattr(cascade, "SPARSE_SHARE", 10.0)
    plain = cascade_refine(model, x, mask, base.replace(sparse_tile=0, channels_last=False, pixel_tile=0))
    fast = cascade_refine(model, x, mask, base.replace(sparse_tile=32, channels_last=True, pixel_tile=16))
    assert float((plain - fast).abs().max()) <= TOL


def test_steps_stay_dense_where_sparse_cannot_help(model):
    """``full`` decodes every pixel (every tile is read), and a model without exact windows cannot
    go sparse: both run dense and report it."""
    x, mask = _tensors(200, 200)
    _, info = cascade_refine(model, x, mask, CascadeConfig(scales=(1.0,), min_size=0, decode="full"),
                             return_info=True)
    assert info["sparse_steps"] == [False] and info["encoded_fraction"] == 1.0
    se = build_model("crm", {**TINY, "backbone": "seresnet18"}).eval()
    assert se.context is None
    _, info = cascade_refine(se, x, mask, CascadeConfig(scales=(1.0,), min_size=0, decode="contour:2"),
                             return_info=True)
    assert info["sparse_steps"] == [False]
    with pytest.raises(SamSrError, match="sparse_tile"):
        CascadeConfig(sparse_tile=12)


@pytest.mark.slow
@needs_shared
def test_sparse_equals_dense_on_real_photos(monkeypatch):
    """The shipped model's default run, sparse (default) against dense, on real photos: sod eval
    photos (forced sparse: at 960 px their band's windows cover most of the input and the cascade
    would encode them whole) and the aeroplane resized to 1600 px (sparse by default)."""
    import cv2

    from sam_sr import Refiner
    from sam_sr.imaging.read import read_image, read_mask
    sparse = Refiner.from_checkpoint(device="cpu")
    dense = Refiner.from_checkpoint(device="cpu", sparse_tile=0)
    assert sparse.cascade.sparse_tile > 0
    samples = load_samples({"layout": "generic", "root": SHARED_DATA / "sod",
                            "ids_file": ROOT / "configs/splits/sod_eval.txt"})[:2]
    pairs = [(read_image(s.image), read_mask(s.coarse["dss"])) for s in samples]
    img, coarse = read_image(SHARED_DATA / "highres" / "aeroplane.jpg"), read_mask(SHARED_DATA / "highres" / "aeroplane_coarse.png")
    s = 1600 / max(img.shape[:2])
    size = (round(img.shape[1] * s), round(img.shape[0] * s))
    pairs.append((cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.resize(coarse, size)))
    for k, (image, coarse) in enumerate(pairs):
        aeroplane = k == len(pairs) - 1
        with monkeypatch.context() as mp:
            if not aeroplane:
                mp.setattr(cascade, "SPARSE_SHARE", 10.0)
            res = sparse.predict(image, coarse)
            _, soft_s, info = res.mask, res.soft, res.info
        res = dense.predict(image, coarse)
        _, soft_d = res.mask, res.soft
        assert info["sparse_steps"][-1], info
        assert float(np.abs(soft_s - soft_d).max()) <= TOL


def test_the_equality_check_fails_with_too_little_context(model, monkeypatch):
    """The comparison above can fail: with 16 px of context (not 64), sparse differs from dense."""
    monkeypatch.setattr(cascade, "SPARSE_SHARE", 10.0)
    monkeypatch.setitem(model.__dict__, "_context", 16)
    x, mask = _tensors(420, 560, seed=2)
    base = CascadeConfig(scales=(0.5, 1.0), min_size=0, decode="contour:4", sparse_tile=32)
    d = cascade_refine(model, x, mask, base.replace(sparse_tile=0))
    s = cascade_refine(model, x, mask, base)
    assert float((d - s).abs().max()) > 10 * TOL


@pytest.mark.parametrize("decode,sparse_tile,flip", [("contour:4", 32, False), ("contour:4", 0, False),
                                                     ("hierarchical:8", 32, False), ("full", 0, True)])
def test_a_uint8_image_gives_the_float_images_result(model, decode, sparse_tile, flip, monkeypatch):
    """The predictor passes the image as uint8 (the cascade reads value / 255 where it needs it):
    bit-identical to passing the float32 image, sparse or dense, with flip and upsampling."""
    monkeypatch.setattr(cascade, "SPARSE_SHARE", 10.0)
    img, mask = disk_photo(300, 420, seed=5)
    x8 = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    xf = x8.float().div_(255.0)
    m = torch.from_numpy(mask > 0).float()[None, None]
    for cfg in (CascadeConfig(scales=(0.25, 0.5, 1.0), min_size=0, decode=decode, sparse_tile=sparse_tile,
                              flip=flip),
                CascadeConfig(scales=(0.5, 1.0), min_size=0, decode=decode, sparse_tile=sparse_tile,
                              upsample_to=640)):
        a = cascade_refine(model, xf, m, cfg)
        b = cascade_refine(model, x8, m, cfg)
        assert x8.dtype == torch.uint8
        assert torch.equal(a, b), float((a - b).abs().max())


def test_normalise_reads_uint8_as_value_over_255(model):
    img, mask = disk_photo(40, 56, seed=6)
    x8 = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    m = torch.from_numpy(mask > 0).float()[None, None]
    assert torch.equal(model.normalise(x8, m), model.normalise(x8.float() / 255, m))
