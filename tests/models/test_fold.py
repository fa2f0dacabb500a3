"""Batch norm folded into the convolution before it (sam_sr.models.fold): the same outputs, no batch
norm left in the shipped refiners or MobileSAM, and nothing folded that is not a plain conv -> bn."""
import copy

import torch
from timm.layers import BatchNormAct2d
from torch import nn

from sam_sr.models.fold import fold_batch_norm
from sam_sr.variants import build_model
from sam_sr.variants.v4.region_net import RegionConfig, RegionNet
from tests.conftest import TINY


def _random_statistics(m: nn.Module) -> nn.Module:
    """Batch norms with random scales, shifts and running statistics (initial ones fold to almost
    nothing), in eval mode."""
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5, generator=g)
            mod.bias.data.uniform_(-0.2, 0.2, generator=g)
            mod.running_mean.uniform_(-0.3, 0.3, generator=g)
            mod.running_var.uniform_(0.5, 2.0, generator=g)
    return m.eval()


def _batch_norms(m: nn.Module) -> int:
    return sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())


def test_a_folded_refiner_encodes_the_same_features_with_no_batch_norm_left():
    torch.manual_seed(0)
    model = _random_statistics(build_model("crm", {**TINY, "mask_skip": True, "pixel_head": 8}))
    image, mask = torch.rand(1, 3, 64, 96), (torch.rand(1, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        before = model.encode(image, mask)
        patched = model.encode(image, mask, fusion_patches=3)
    n = _batch_norms(model)
    assert fold_batch_norm(model) == n > 0
    assert _batch_norms(model) == 0
    with torch.no_grad():
        torch.testing.assert_close(model.encode(image, mask), before, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.encode(image, mask, fusion_patches=3), patched, atol=1e-5, rtol=1e-5)


def test_the_region_network_folds_too():
    from tests.models.test_region import SMALL, _inputs
    torch.manual_seed(0)
    net = RegionNet(RegionConfig.from_dict(SMALL))
    nn.init.normal_(net.head.weight, std=0.1)   # at initialisation the head is zero: SAM's answer alone
    net = _random_statistics(net)
    folded = copy.deepcopy(net)
    assert fold_batch_norm(folded) == _batch_norms(net) > 0
    x = _inputs()
    with torch.no_grad():
        expected = net(*x)
        assert (expected - x[2][:, :1]).abs().max() > 0.1   # the folded layers matter
        torch.testing.assert_close(folded(*x), expected, atol=1e-4, rtol=1e-5)


def test_only_eval_mode_plain_conv_then_batch_norm_pairs_are_folded():
    bn_first = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3))
    act = nn.Sequential(nn.Conv2d(3, 4, 3), BatchNormAct2d(4))   # batch norm + ReLU: not a plain bn
    training = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    for m in (bn_first, act):
        m.eval()
    assert fold_batch_norm(bn_first) == 0
    assert fold_batch_norm(act) == 0
    assert fold_batch_norm(training) == 0 and _batch_norms(training) == 1
    x = torch.randn(1, 3, 8, 8)
    assert (act(x) >= 0).all()   # its activation still applies


def test_the_bundled_mobile_sam_loads_with_its_batch_norms_folded():
    from sam_sr.sam.loader import load_sam
    sam = load_sam("vit_t", None, "cpu")
    assert _batch_norms(sam) == 0
    assert sum(isinstance(m, nn.Identity) for m in sam.image_encoder.modules()) >= 27   # TinyViT's 27
