"""Training of v5's keep-or-change decision: per-dataset balance of its weights and of its rule."""
import numpy as np
import pytest

from sam_sr.training.decision import DECISION_DATA_DEFAULTS, balanced_weights, select_thresholds
from sam_sr.variants.v5.changes import CHANGE_FEATURES, N_CHANGE, N_PHOTO
from sam_sr.variants.v5.model import DECISION_DEFAULTS


def test_balanced_weights_give_each_dataset_the_same_total():
    w = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    g = np.array(["big", "big", "big", "big", "small"])
    out = balanced_weights(w, g)
    assert out.sum() == pytest.approx(w.sum())
    assert out[g == "big"].sum() == pytest.approx(out[g == "small"].sum())
    # the order within a dataset is kept
    assert out[:4] / out[0] == pytest.approx(w[:4] / w[0])


def _mask(inter, union, area, in_gt):
    return {"inter": inter, "union": union, "area": np.array([area]), "in_gt": np.array([in_gt]),
            "additions": np.array([True])}


def _data():
    """A large dataset whose right masks do not move and whose wrong ones gain +5 points when their
    one change (an addition) is taken, and a small one whose one right mask loses 9.09 points."""
    stats, source, dataset = [], [], []
    for _ in range(10):
        stats.append(_mask(100, 100, 0, 0)); source.append("gt"); dataset.append("large")
    for _ in range(4):
        stats.append(_mask(50, 100, 5, 5)); source.append("swap"); dataset.append("large")
    stats.append(_mask(100, 100, 10, 0)); source.append("gt"); dataset.append("small")
    n = len(stats)
    X = np.zeros((n, N_CHANGE + N_PHOTO), np.float32)
    X[:, CHANGE_FEATURES.index("is_addition")] = 1.0
    return {"X": X, "mask": np.arange(n), "stats": stats, "source": np.array(source),
            "dataset": np.array(dataset)}


def test_balance_lets_a_small_dataset_veto_what_a_large_one_gains():
    data = _data()
    pc = np.full(len(data["stats"]), 0.65, np.float32)     # every change at 0.65
    pp = np.ones(len(data["stats"]), np.float32)
    settings = dict(DECISION_DEFAULTS)
    # merged over datasets: gt loses 9.09 / 11 = 0.83 points, swap gains 5: take (0.6 <= 0.65)
    chosen, _ = select_thresholds(data, pc, pp, ["gt"], 2.0, settings)
    assert chosen["take"] == 0.6
    # per dataset: the small one's gt loses 9.09, half of the right loss: 5 - 2 * 4.55 < 0, leave
    chosen, rows = select_thresholds(data, pc, pp, ["gt"], 2.0, settings, balance=True)
    assert chosen["take"] > 0.65
    taken = [r for r in rows if r["take"] == 0.6 and r["photo"] == 0.0 and r["strong"] == 0.6][0]
    assert taken["per_dataset"]["small"]["gt"] == pytest.approx(-100 * (1 - 100 / 110))
    assert taken["score"] == pytest.approx(5.0 + 2.0 * 0.5 * taken["per_dataset"]["small"]["gt"])


def test_balance_is_off_unless_asked():
    assert DECISION_DATA_DEFAULTS["balance"] is False
