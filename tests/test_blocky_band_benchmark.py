"""benchmarks/blocky_band.py: its written selection rule, and a run end to end on synthetic photos."""
import importlib.util
import json

import pytest

from tests.conftest import ROOT, save_pair


def _bench():
    spec = importlib.util.spec_from_file_location("blocky_band", ROOT / "benchmarks" / "blocky_band.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_candidates_parse():
    assert _bench().candidates("0.5:0, 1:0.1,2") == [(0.5, 0.0), (1.0, 0.1), (2.0, 0.0)]


def test_the_rule_takes_the_largest_smallest_gain_that_loses_no_more_photos():
    choose = _bench().choose
    model = {"4": [0.2, 0.9, 0.0], "8": [0.05, 0.8, 10.0]}
    rows = {"model": model,
            "a": {"4": [0.4, 2.3, 0.0], "8": [0.7, 3.0, 10.0]},      # smallest 0.4
            "b": {"4": [0.9, 2.0, 3.3], "8": [0.9, 3.0, 10.0]},      # better, but loses a photo more at x4
            "c": {"4": [0.3, 1.9, 0.0], "8": [0.35, 1.8, 10.0]}}     # smallest 0.3
    assert choose(rows) == "a"
    assert choose({"model": model, "d": {"4": [0.01, 3.0, 0.0], "8": [0.9, 3.0, 0.0]}}) is None   # 0.01 < 0.05


@pytest.mark.slow
def test_a_run_on_synthetic_photos_writes_its_table(tmp_path, capsys):
    for i in range(2):
        save_pair(tmp_path / "sod" / "images", tmp_path / "sod" / "masks", f"p{i}", seed=i)
    ids = tmp_path / "ids.txt"
    ids.write_text("p0\np1\n")
    out = tmp_path / "b.json"
    rc = _bench().main(["--root", str(tmp_path / "sod"), "--ids", str(ids), "--variant", "crm", "--factors", "8",
                        "--candidates", "0.5:0", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["photos"] == 2 and set(res["rows"]) == {"model", "0.5:0"} and set(res["rows"]["model"]) == {"8"}
    assert "chosen" in res and "blocky x8" in capsys.readouterr().out
