import torch

from sam_sr.training.losses import sample_query_points


def test_points_in_the_coarse_band_lie_near_the_coarse_contour():
    gt = torch.zeros(2, 1, 40, 40)
    gt[:, :, 5:35, 5:35] = 1
    coarse = torch.zeros_like(gt)
    coarse[:, :, 10:30, 10:30] = 1          # contour rows/cols 10 and 29
    idx = sample_query_points(gt, coarse, 500, 1.0, coarse_band=3, generator=torch.Generator().manual_seed(0))
    r, c = idx // 40, idx % 40
    inside = (r >= 10) & (r < 30) & (c >= 10) & (c < 30)
    # Chebyshev distance to the square's contour: within 3 px on either side
    d_out = torch.maximum(torch.maximum(10 - r, r - 29), torch.maximum(10 - c, c - 29))
    d_in = torch.minimum(torch.minimum(r - 10, 29 - r), torch.minimum(c - 10, 29 - c))
    assert torch.all(torch.where(inside, d_in, d_out) <= 3)
    # the default region (ground-truth boundary or coarse errors) also reaches the gt square's edge
    idx2 = sample_query_points(gt, coarse, 500, 1.0, band=1, generator=torch.Generator().manual_seed(0))
    r2, c2 = idx2 // 40, idx2 % 40
    assert ((r2 <= 6) | (c2 <= 6)).any() and not ((r2 > 12) & (r2 < 27) & (c2 > 12) & (c2 < 27)).any()
