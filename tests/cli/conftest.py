"""Fixtures of the command-line tests."""
import pytest
from PIL import Image

from tests.conftest import disk_photo


@pytest.fixture
def single(tmp_path):
    """A folder holding one small photo (``photo.png``) and its coarse mask (``mask.png``)."""
    img, mask = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path
