"""SAM embeddings read at image points: the 1024-px frame mapping and the cascade's padded grids."""
import torch

from sam_sr.sam.features import features_for_step, sample_embedding


def _coord_embedding(n=64):
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([ys, xs])[None]  # channel 0: row index of the cell, channel 1: column index


def test_image_points_map_to_the_longest_side_frame():
    emb = _coord_embedding()
    # a 320 x 640 image fills the frame's width and the top half of its height (L = 640)
    out = sample_embedding(emb, (320, 640), torch.tensor([[160.0, 5.0]]), torch.tensor([[320.0, 635.0]]))
    # pixel coordinate p maps to cell coordinate p / 640 * 64 - 0.5 (cell centres at +0.5)
    assert torch.allclose(out[0], torch.tensor([[15.5, 0.0]]))      # 5 px -> 0.0 (clamped at 0)
    assert torch.allclose(out[1], torch.tensor([[31.5, 63.0]]))     # 635 px -> 63.0
    # points outside the image read the border
    edge = sample_embedding(emb, (320, 640), torch.tensor([[-50.0, 400.0]]), torch.tensor([[0.0, 0.0]]))
    assert torch.allclose(edge[0, 0], torch.tensor([0.0, 31.5]))


def test_step_features_follow_resize_and_padding():
    emb = _coord_embedding()
    img_hw = (320, 640)
    direct = features_for_step(emb, img_hw, img_hw, 0, 0, img_hw)
    assert direct.shape == (1, 2, 40, 80)
    ys = torch.arange(40, dtype=torch.float32) * 8 + 4
    xs = torch.arange(80, dtype=torch.float32) * 8 + 4
    ref = sample_embedding(emb, img_hw, *torch.meshgrid(ys, xs, indexing="ij"))
    assert torch.allclose(direct[0], ref)
    # the image at half size, padded by 16 px: interior cells read the same image points
    half = features_for_step(emb, img_hw, (160, 320), 16, 16, (192, 352))
    assert half.shape == (1, 2, 24, 44)
    ys2, xs2 = (torch.arange(20) * 8 + 4.0) * 2, (torch.arange(40) * 8 + 4.0) * 2
    ref2 = sample_embedding(emb, img_hw, *torch.meshgrid(ys2, xs2, indexing="ij"))
    assert torch.allclose(half[0, :, 2:22, 2:42], ref2)
