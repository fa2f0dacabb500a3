"""benchmarks/checkouts.py: medians and ratios of two checkouts' runs, and a clear refusal of a folder
that is not a sam-sr checkout (before anything runs)."""
import importlib.util

import pytest

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("checkouts", ROOT / "benchmarks" / "checkouts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rows_are_medians_with_the_after_over_before_ratio():
    rows = _bench().summarise({"before": {"t": [3.0, 1.0, 2.0]}, "after": {"t": [1.0, 1.5, 9.0]}})
    assert rows == {"t": {"before": 2.0, "after": 1.5, "ratio": 0.75}}


def test_a_folder_that_is_not_a_checkout_is_refused(tmp_path, monkeypatch):
    (tmp_path / "sod").mkdir()
    (tmp_path / "highres").mkdir()
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="not a sam-sr checkout"):
        _bench().main(["--before", str(tmp_path), "--json", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()
