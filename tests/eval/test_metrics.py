import pytest

from minigptv2.eval.metrics import Matching, exact_match, match_boxes, refer_correct


def test_refer_threshold_is_inclusive_at_half():
    # Prediction covers exactly half of the target and nothing else: IoU = 0.5.
    assert refer_correct((0, 0, 50, 100), (0, 0, 100, 100))
    assert not refer_correct((0, 0, 49, 100), (0, 0, 100, 100))
    assert not refer_correct(None, (0, 0, 10, 10))


def test_reference_rule_uses_plus_one_iou_and_strict_threshold():
    # Continuous IoU is exactly 0.5, but the "+1" IoU is 51*101 / (101*101) > 0.5.
    assert refer_correct((0, 0, 50, 100), (0, 0, 100, 100), reference_rule=True)
    # Touching boxes: 0 continuous, tiny but positive with +1 — still a miss.
    assert not refer_correct((0, 0, 10, 10), (10, 0, 20, 10), reference_rule=True)


@pytest.mark.parametrize(
    ("predicted", "target", "same"),
    [
        ("The dog.", "dog", True),
        ("RED", "red", True),
        ("a red circle", "red circle", True),
        ("two", "2", False),
        ("blue", "red", False),
    ],
)
def test_exact_match(predicted, target, same):
    assert exact_match(predicted, target) is same


def test_matching_is_one_to_one():
    targets = [(0, 0, 10, 10), (20, 20, 30, 30)]
    # A duplicate of the first box does not count twice.
    result = match_boxes([(0, 0, 10, 10), (0, 0, 10, 10), (20, 20, 30, 31)], targets)
    assert result == Matching(true_positives=2, predicted=3, targets=2)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == 1.0
    assert result.f1 == pytest.approx(0.8)


def test_matching_prefers_the_best_pairs():
    # p0 overlaps both targets; greedy-by-IoU gives p0 to t1 (higher IoU) and p1 to t0.
    targets = [(0, 0, 10, 10), (2, 0, 12, 10)]
    predicted = [(2, 0, 12, 10), (0, 0, 9, 10)]
    assert match_boxes(predicted, targets).true_positives == 2


def test_empty_cases_and_sums():
    assert match_boxes([], []).f1 == 0.0
    assert match_boxes([], [(0, 0, 1, 1)]).recall == 0.0
    assert (Matching(1, 2, 3) + Matching(1, 1, 1)) == Matching(2, 3, 4)
