"""SAM-SR v5's decision: the changes and their features, the trees as tensors, the rule, the stage."""
import numpy as np
import pytest

from sam_sr.variants.v4.region_step import compose
from sam_sr.variants.v5 import decide
from sam_sr.variants.v5.changes import CHANGE_FEATURES, N_CHANGE, N_PHOTO, find_changes, holes
from sam_sr.variants.v5.data import subset_iou
from sam_sr.variants.v5.model import DECISION_DEFAULTS
from sam_sr.variants.v5.trees import TreeEnsemble


def _scene():
    """A ring-shaped coarse mask (a hole in the middle), a region mask that fills the hole, drops a
    blob of the coarse mask and adds a new one far away."""
    h, w = 120, 160
    coarse = np.zeros((h, w), bool)
    coarse[20:100, 20:100] = True
    coarse[45:75, 45:75] = False                   # the hole
    coarse[20:40, 120:150] = True                  # a blob the region step drops
    region = coarse.copy()
    region[45:75, 45:75] = True                    # fills the hole
    region[20:40, 120:150] = False
    region[80:110, 120:150] = True                 # adds a blob
    logits = np.where(region, 6.0, -6.0).astype(np.float32)
    sam = [np.where(region[::2, ::2], 8.0, -8.0).astype(np.float32)] * 2
    return coarse, logits, sam


def test_changes_are_the_composition_taken_apart():
    coarse, logits, sam = _scene()
    ch = find_changes(coarse, coarse.astype(np.float32), logits, 2, sam, [0.9, 0.8])
    assert len(ch) == 3 and ch.features.shape == (3, N_CHANGE + N_PHOTO) and ch.photo.shape == (N_PHOTO,)
    everything = ch.apply(coarse, np.ones(3, bool))
    assert np.array_equal(everything, compose(coarse, logits, 2))
    assert np.array_equal(ch.apply(coarse, np.zeros(3, bool)), coarse)
    f = dict(zip(CHANGE_FEATURES, ch.features[np.argmax(ch.features[:, 0] * ch.features[:, CHANGE_FEATURES.index("fills_hole")])]))
    assert f["is_addition"] == 1 and f["fills_hole"] == 1.0 and f["sam1_agrees"] == 1.0


def test_each_change_reads_its_own_pixels():
    """The features of change j come from the pixels labelled j: its area and its side (addition or
    removal) match the label map."""
    coarse, logits, sam = _scene()
    ch = find_changes(coarse, coarse.astype(np.float32), logits, 2, sam, [0.9, 0.8])
    area = CHANGE_FEATURES.index("log_area_vs_coarse")
    for j in range(len(ch)):
        px = ch.labels == j + 1
        assert np.isclose(ch.features[j, area], np.log(px.sum() / coarse.sum()))
        assert ch.additions[j] == (not coarse[px].any()) and ch.features[j, 0] == float(ch.additions[j])


def test_holes_are_enclosed_background_only():
    m = np.zeros((10, 10), bool)
    m[2:8, 2:8] = True
    m[4:6, 4:6] = False
    assert holes(m).sum() == 4
    m[4:6, 4:10] = False                           # opened to the border: no longer a hole
    assert holes(m).sum() == 0


def test_subset_iou_is_exact():
    rng = np.random.default_rng(0)
    gt = rng.random((40, 40)) > 0.5
    coarse = rng.random((40, 40)) > 0.5
    labels = rng.integers(0, 4, (40, 40))
    adds = np.array([True, False, True])
    stats = {"inter": (coarse & gt).sum(), "union": (coarse | gt).sum(), "additions": adds}
    # changes may only add outside the coarse mask and remove inside it
    region = [(labels == k + 1) & (~coarse if adds[k] else coarse) for k in range(3)]
    stats["area"] = np.array([r.sum() for r in region])
    stats["in_gt"] = np.array([(r & gt).sum() for r in region])
    for take in ([1, 0, 1], [0, 1, 0], [1, 1, 1]):
        out = coarse.copy()
        for k, t in enumerate(take):
            if t:
                out[region[k]] = adds[k]
        assert subset_iou(stats, np.array(take, bool)) == pytest.approx((out & gt).sum() / (out | gt).sum())


def test_trees_give_scikit_learns_probabilities():
    sklearn = pytest.importorskip("sklearn.ensemble")
    import torch
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(float)
    clf = sklearn.HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=7, early_stopping=False,
                                                 random_state=0).fit(X, y)
    t = TreeEnsemble(5, *TreeEnsemble.shape_of(clf)).load_sklearn(clf)
    ours = torch.sigmoid(t(torch.from_numpy(X))).numpy()
    assert np.abs(ours - clf.predict_proba(X)[:, 1]).max() < 1e-5
    restored = TreeEnsemble(5, *TreeEnsemble.shape_of(clf))
    restored.load_state_dict(t.state_dict())
    assert torch.equal(restored(torch.from_numpy(X)), t(torch.from_numpy(X)))


def test_the_rule_needs_strong_evidence_for_holes_thin_and_big_parts():
    coarse, logits, sam = _scene()
    ch = find_changes(coarse, coarse.astype(np.float32), logits, 2, sam, [0.9, 0.8])
    settings = {**DECISION_DEFAULTS, "take": 0.5, "strong": 0.9, "photo": 0.5}
    hole = ch.features[:, CHANGE_FEATURES.index("fills_hole")] >= 0.5
    p = np.full(len(ch), 0.7)
    take = decide(ch, p, 0.8, settings)
    assert not take[hole].any() and take[~hole & (ch.features[:, 0] == 1)].all()
    assert decide(ch, np.full(len(ch), 0.95), 0.8, settings).all()
    assert not decide(ch, np.full(len(ch), 0.95), 0.4, settings).any()     # the photo says no


def test_big_additions_need_strong_evidence_only_when_big_add_is_set():
    coarse, logits, sam = _scene()
    ch = find_changes(coarse, coarse.astype(np.float32), logits, 2, sam, [0.9, 0.8])
    f = ch.features
    add = f[:, CHANGE_FEATURES.index("is_addition")] == 1
    share = np.exp(f[:, CHANGE_FEATURES.index("log_area_vs_coarse")])
    hole = f[:, CHANGE_FEATURES.index("fills_hole")] >= 0.5
    far = add & ~hole                      # the blob added far away: 900 px over the coarse 6,100
    assert far.sum() == 1 and 0.1 < share[far][0] < 0.3
    settings = {**DECISION_DEFAULTS, "take": 0.5, "strong": 0.9, "photo": 0.5}
    p = np.full(len(ch), 0.7)
    assert decide(ch, p, 0.8, settings)[far].all()                           # big_add 0: no rule
    assert not decide(ch, p, 0.8, {**settings, "big_add": 0.1})[far].any()   # big: needs 0.9
    assert decide(ch, p, 0.8, {**settings, "big_add": 0.3})[far].all()       # under 0.3 of the mask
    assert decide(ch, np.full(len(ch), 0.95), 0.8, {**settings, "big_add": 0.1})[far].all()


def test_a_removal_that_opens_a_hole_is_known_and_can_be_refused():
    """A removal inside the coarse mask (a blurred face cut out of a person) opens a new enclosed
    hole; one at the mask's edge does not. With ``opens`` above 1 the first is never taken."""
    h, w = 120, 160
    coarse = np.zeros((h, w), bool)
    coarse[10:110, 10:110] = True
    region = coarse.copy()
    region[40:70, 40:70] = False                   # inside: taking it opens a hole
    region[10:30, 80:110] = False                  # at the edge: it only shrinks the mask
    logits = np.where(region, 6.0, -6.0).astype(np.float32)
    sam = [np.where(region[::2, ::2], 8.0, -8.0).astype(np.float32)] * 2
    ch = find_changes(coarse, coarse.astype(np.float32), logits, 2, sam, [0.9, 0.8])
    assert len(ch) == 2 and not ch.additions.any()
    inner = np.array([ch.labels[55, 55] == j + 1 for j in range(2)])
    assert ch.opens_hole[inner][0] == 1.0 and ch.opens_hole[~inner][0] == 0.0
    settings = {**DECISION_DEFAULTS, "take": 0.5, "strong": 0.9, "photo": 0.5, "big": 0.9}
    assert decide(ch, np.full(2, 0.95), 0.8, settings).all()                 # opens 0: no rule of its own
    take = decide(ch, np.full(2, 0.95), 0.8, {**settings, "opens": 1.01})
    assert not take[inner].any() and take[~inner].all()
    # the scene's hole-filling addition is not a removal: opens_hole is 0 for additions
    coarse2, logits2, sam2 = _scene()
    ch2 = find_changes(coarse2, coarse2.astype(np.float32), logits2, 2, sam2, [0.9, 0.8])
    assert (ch2.opens_hole[ch2.additions] == 0).all()


@pytest.mark.parametrize("variant", ["v5-edge", "v5-holes"])
def test_v5_edge_and_v5_holes_leave_a_right_mask_where_it_is(variant):
    """The default, v5-edge, keeps a mask that is already right: given the bundled example's refined
    mask (its golden file) as the coarse mask, it moves at most 20 of its 113,121 pixels (fp32;
    measured 11 on 2026-12-07, where v5, the previous default, moves 478). So does v5-holes (11)."""
    import numpy as np

    from sam_sr import Refiner
    from sam_sr.imaging import read_image, read_mask
    from tests.conftest import ROOT
    image = read_image(ROOT / "sam_sr/assets/coffee.jpg")
    right = read_mask(ROOT / "tests/golden/coffee_refined_default.png") >= 0.5
    out = Refiner.from_checkpoint(variant=variant, device="cpu", precision="fp32").refine(image, right) > 0
    assert int(np.count_nonzero(out != right)) <= 20


class _ScriptedPasses:
    """A v5 decision stage whose region passes are scripted: pass k adds row k of the mask when
    ``takes[k]`` is above 0 (that many changes taken), and records the mask it started from."""

    def __init__(self, passes: int, takes: list[int], kept=None):
        from sam_sr.variants.v5 import DecisionStage

        class Stage(DecisionStage):
            def one_pass(stage, source, image, coarse, settings):
                k = len(self.seen)
                self.seen.append(np.asarray(coarse, np.float32).copy())
                out = np.asarray(coarse, np.float32) >= 0.5
                if self.takes[k]:
                    out = out.copy()
                    out[k] = True
                return out, self.takes[k] + 1, self.takes[k], 0.9 - 0.1 * k

        class Model:
            def settings(model):
                return {**DECISION_DEFAULTS, "passes": passes, "kept": kept or {}}

        self.takes, self.seen = takes, []
        self.stage = Stage()
        self.stage.model = Model()

    def __call__(self, coarse):
        return self.stage(None, None, coarse)


@pytest.mark.parametrize("passes,rows,taken,run", [(1, [0], 2, 1), (2, [0, 1], 3, 2), (3, [0, 1], 3, 3),
                                                   (5, [0, 1], 3, 3)])
def test_passes_run_on_the_last_pass_result_and_stop_when_nothing_is_taken(passes, rows, taken, run):
    """Each pass starts from the previous pass's mask; a pass that takes nothing ends the loop (the same
    mask would give the same pass again) and leaves the mask as it was."""
    coarse = np.zeros((6, 8), np.float32)
    coarse[5, 2:6] = 1.0
    scripted = _ScriptedPasses(passes, takes=[2, 1, 0, 4, 4])
    out, extra, info = scripted(coarse)
    expected = coarse >= 0.5
    expected[rows] = True
    assert extra is None and out.dtype == bool
    np.testing.assert_array_equal(out, expected)
    assert info["taken"] == taken and info["passes"] == run == len(scripted.seen)
    assert info["photo"] == pytest.approx(0.9)                     # the first pass's
    assert info["composed_changed"] == pytest.approx((out != (coarse >= 0.5)).mean())
    for k in range(1, run):                                         # pass k read pass k-1's result
        assert scripted.seen[k][k - 1].all()
    assert "cascade" not in info


def test_kept_settings_apply_only_when_no_pass_takes_anything():
    kept = {"decode": "contour:2", "margin": 0.1}
    coarse = np.zeros((6, 8), np.float32)
    out, _, info = _ScriptedPasses(3, takes=[0, 5, 5], kept=kept)(coarse)
    assert info == {**info, "taken": 0, "passes": 1, "cascade": kept}
    assert not out.any()
    _, _, info = _ScriptedPasses(3, takes=[1, 0, 0], kept=kept)(coarse)
    assert "cascade" not in info and info["passes"] == 2


@pytest.mark.parametrize("bad", [0, 9, 2.5, True, "2", float("nan"), float("inf")])
def test_passes_must_be_a_whole_number_from_1_to_the_maximum(bad):
    from sam_sr.errors import SamSrError
    from sam_sr.variants.v5.model import V5Config
    with pytest.raises(SamSrError, match="passes"):
        V5Config.from_dict({"decision": {"passes": bad}})


def test_passes_given_as_a_float_by_export_are_read_as_an_integer():
    from sam_sr.variants.v5.model import V5Config
    assert V5Config.from_dict({"decision": {"passes": 3.0}}).decision["passes"] == 3
    assert V5Config.from_dict({}).decision["passes"] == 1
