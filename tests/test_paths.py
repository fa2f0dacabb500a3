"""``sam_sr.paths``: the data folder and how result files name paths."""
from pathlib import Path

import pytest

import sam_sr
from sam_sr.errors import SamSrError
from sam_sr.paths import data_path, portable


def test_data_path_needs_the_variable(monkeypatch):
    monkeypatch.delenv("SAM_SR_DATA", raising=False)
    with pytest.raises(SamSrError, match="SAM_SR_DATA"):
        data_path("sod")


def test_portable_names_the_data_folder_and_the_package_not_the_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path / "data"))
    assert portable(tmp_path / "data" / "sod") == "$SAM_SR_DATA/sod"
    assert portable(tmp_path / "data") == "$SAM_SR_DATA"
    shipped = Path(sam_sr.__file__).parent / "weights" / "sam_sr_v5_edge.pt"
    assert portable(shipped) == "sam_sr/weights/sam_sr_v5_edge.pt"
    assert portable(str(tmp_path / "mine.pt")) == str(tmp_path / "mine.pt")     # the user's own: as given
    assert portable(tmp_path / "data2" / "sod") == str(tmp_path / "data2" / "sod")   # not a prefix match
    assert portable(None) is None
    monkeypatch.delenv("SAM_SR_DATA")
    assert portable(tmp_path / "data" / "sod") == str(tmp_path / "data" / "sod")
