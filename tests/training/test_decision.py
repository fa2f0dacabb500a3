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


def test_real_maps_can_also_be_given_thresholded_and_count_as_their_own_source(tmp_path):
    """``real_binary``: each real map also as a thresholded copy (``realbin:<source>``), in the same
    order and with no draw from the random generator (the synthesised masks stay the same); in the
    flattened records the copies are one source, ``realbin``, beside ``real``."""
    import numpy as np
    from PIL import Image

    from sam_sr.training.decision import flatten
    from sam_sr.variants.v5.data import _coarse_masks

    class Sample:
        coarse = {}
    gt = np.zeros((40, 60), bool)
    gt[10:30, 15:45] = True
    soft = np.clip(np.linspace(0, 255, 60)[None].repeat(40, 0), 0, 255).astype(np.uint8)
    for src in ("b_net", "a_net"):
        Image.fromarray(soft).save(tmp_path / f"{src}.png")
        Sample.coarse[src] = tmp_path / f"{src}.png"
    plain = _coarse_masks({"real": True, "protocols": ["gt"]}, Sample, gt, np.random.default_rng(0), None)
    both = _coarse_masks({"real": True, "real_binary": True, "protocols": ["gt"]}, Sample, gt,
                         np.random.default_rng(0), None)
    assert [n for n, _ in plain] == ["real:a_net", "real:b_net", "gt"]
    assert [n for n, _ in both] == ["real:a_net", "realbin:a_net", "real:b_net", "realbin:b_net", "gt"]
    real, binary = both[0][1], both[1][1]
    assert ((real > 0) & (real < 1)).any() and set(np.unique(binary)) == {0.0, 1.0}
    np.testing.assert_array_equal(binary, (real >= 0.5).astype(np.float32))

    from sam_sr.variants.v5.changes import N_CHANGE, N_PHOTO
    rec = {"names": np.array(["real:a_net", "realbin:a_net", "gt"]), "sample": np.zeros(0, np.int64),
           "inter": np.array([5, 5, 10]), "union": np.array([10, 10, 10]), "area": np.zeros(0),
           "in_gt": np.zeros(0), "additions": np.zeros(0, bool), "features": np.zeros((0, N_CHANGE + N_PHOTO)),
           "photo": np.zeros((3, N_PHOTO), np.float32)}
    assert flatten([rec])["source"].tolist() == ["real", "realbin", "gt"]
