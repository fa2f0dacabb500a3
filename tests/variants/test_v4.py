"""The default's variants with the real bundled MobileSAM: v4 (region step + CRM) and sam-prompt."""
import numpy as np
import pytest
import torch

from sam_sr import Refiner, SamSrError
from sam_sr.checkpoint import save_checkpoint
from sam_sr.variants import build_model
from tests.conftest import TINY, disk_photo

pytestmark = pytest.mark.slow   # MobileSAM's image encoder runs on each photo (about 1-3 s on a CPU)


@pytest.fixture
def v4_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("v4", {**TINY, "compose": 0.0})
    p = tmp_path / "v4.pt"
    save_checkpoint(p, model, "v4", model.config.to_dict(), iteration=0)
    return p


def test_v4_runs_offline_with_no_sam_flags(v4_checkpoint):
    refiner = Refiner.from_checkpoint(v4_checkpoint, device="cpu")
    assert refiner.info["variant"] == "v4"
    image, mask = disk_photo(120, 160, seed=2)
    res = refiner.predict(image, mask)
    out, info = res.mask, res.info
    assert out.shape == mask.shape and out.dtype == np.uint8
    assert 0 <= info["sam"]["changed"] <= 1 and "composed_changed" in info["sam"]
    # an untrained region network returns SAM's first answer: on this high-contrast disk SAM finds it
    assert (out > 0).mean() > 0.02


def test_sam_prompt_runs_a_crm_checkpoint_offline(tiny_checkpoint):
    refiner = Refiner.from_checkpoint(tiny_checkpoint, variant="sam-prompt", device="cpu")
    image, mask = disk_photo(120, 160, seed=3)
    res = refiner.predict(image, mask)
    out, info = res.mask, res.info
    assert out.shape == mask.shape and info["sam"]["candidate"] in (0, 1, 2)


def test_a_bad_sam_checkpoint_for_v4_is_one_error_naming_it(v4_checkpoint, tmp_path):
    bad = tmp_path / "sam.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SamSrError, match=str(bad)):
        Refiner.from_checkpoint(v4_checkpoint, device="cpu", sam_checkpoint=str(bad))
    with pytest.raises(SamSrError, match="not found"):
        Refiner.from_checkpoint(v4_checkpoint, device="cpu", sam_checkpoint=str(tmp_path / "missing.pt"))
