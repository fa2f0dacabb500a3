"""Region network of SAM-SR v4: starts at SAM's answer, sees the whole grid, checks its inputs."""
import pytest
import torch

from sam_sr import SamSrError
from sam_sr.variants.v4.region_net import SAM_LOGIT_CLAMP, RegionConfig, RegionNet

SMALL = {"widths": [4, 8, 8], "sam_channels": 16, "sam_proj": 8, "hidden": 16, "dilations": [1, 2], "heads": 2}


def _inputs(b=2, sam_channels=16, s=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, sam_channels, 64, 64, generator=g), torch.rand(b, 1, 256, 256, generator=g),
            torch.randn(b, s, 256, 256, generator=g) * 15, torch.rand(b, 3, 256, 256, generator=g),
            torch.ones(b, 1, 256, 256)]


def test_untrained_network_returns_sams_first_answer():
    net = RegionNet(RegionConfig.from_dict(SMALL)).eval()
    x = _inputs()
    out = net(*x)
    assert out.shape == (2, 1, 256, 256)
    assert torch.allclose(out, x[2][:, :1].clamp(-SAM_LOGIT_CLAMP, SAM_LOGIT_CLAMP))


def test_training_moves_the_correction_and_it_depends_on_far_cells():
    torch.manual_seed(0)
    net = RegionNet(RegionConfig.from_dict(SMALL))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = _inputs()
    target = torch.zeros(2, 1, 256, 256)
    for _ in range(3):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(*x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert net.head.weight.abs().sum() > 0
    net.eval()
    a = net(*x)
    y = [t.clone() for t in x]
    y[1][:, :, 200:, 200:] = 1 - y[1][:, :, 200:, 200:]   # change the coarse mask far from the top-left
    b = net(*y)
    assert (a[:, :, :32, :32] - b[:, :, :32, :32]).abs().max() > 0   # global context reaches it


def test_bad_inputs_are_named():
    net = RegionNet(RegionConfig.from_dict(SMALL))
    x = _inputs()
    with pytest.raises(SamSrError, match="sam_logits"):
        net(x[0], x[1], x[2][:, :1], x[3], x[4])
    with pytest.raises(SamSrError, match="embedding"):
        net(x[0][:, :8], *x[1:])
    with pytest.raises(SamSrError, match="widths"):
        RegionConfig.from_dict({"widths": [4, 8]})
    with pytest.raises(SamSrError, match="unknown region config"):
        RegionConfig.from_dict({"width": [4, 8, 8]})
