import pytest

from minigptv2.boxes import parse_box
from minigptv2.eval.metrics import (
    Matching,
    ReferScores,
    auroc,
    binary_scores,
    chair_scores,
    detection_scores,
    exact_match,
    gqa_correct,
    match_boxes,
    normalise_korean_answer,
    normalize_vqa_answer,
    parse_binary,
    pope_answer,
    refer_correct,
    refer_iou,
    refer_scores,
    vizwiz_reference_accuracy,
    vqa_accuracy,
)


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


@pytest.mark.parametrize(
    ("predicted", "target", "same"),
    [
        # Spacing, punctuation and one polite or copula ending do not matter.
        ("빨간 원", "빨간 원", True), ("빨간원", "빨간 원", True), ("빨간 원.", "빨간 원", True),
        ("빨간 원이에요", "빨간 원", True), ("빨간 원입니다.", "빨간 원", True),
        ("빨간색이에요", "빨간색", True), ("물체예요", "물체", True),
        ("삼각형이요", "삼각형", True),
        # Yes and no, in their common forms.
        ("예", "네", True), ("네.", "네", True), ("아니오", "아니요", True),
        ("아니에요", "아니요", True), ("아뇨", "아니요", True), ("네", "아니요", False),
        # A count in any form; none at all is 0.
        ("2", "두 개", True), ("2개", "두 개", True), ("두개", "두 개", True),
        ("둘", "두 개", True),
        ("두 개예요", "두 개", True), ("네 개", "4", True), ("네 개요", "네 개", True),
        ("열 개", "10", True), ("0", "없어요", True), ("0개", "없어요", True),
        ("없습니다", "없어요", True), ("없음", "없어요", True),
        ("세 개", "두 개", False), ("네 개", "네", False),
        # Words must be the answer key's: another colour, the colour's other name, a particle.
        ("파란 원", "빨간 원", False), ("빨강", "빨간색", False), ("빨간 원이", "빨간 원", False),
        ("red circle", "빨간 원", False), ("", "빨간 원", False),
    ],
)  # fmt: skip
def test_korean_exact_match(predicted, target, same):
    assert exact_match(predicted, target, "ko") is same


def test_korean_normalised_forms_and_unknown_languages():
    assert normalise_korean_answer(" 빨간  원이에요! ") == "빨간원"
    assert normalise_korean_answer("두 개예요.") == "2"
    assert normalise_korean_answer("아니요") == "아니요"
    with pytest.raises(ValueError, match="no answer normalisation for language 'fr'"):
        exact_match("rouge", "rouge", "fr")


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


# -- referring expressions --------------------------------------------------------------------


def test_refer_scores_are_per_expression_with_mean_iou():
    # Two expressions share one image and one box (as in the RefCOCO files): each is scored.
    target = (50.0, 50.0, 100.0, 100.0)
    scores = refer_scores([(50, 50, 100, 100), None, (0, 0, 50, 50)], [target] * 3)
    assert scores == ReferScores(acc50=1 / 3, mean_iou=1 / 3, n=3, unparsable=1)


def test_refer_boxes_touching_the_image_border():
    width = height = 100
    target = (50.0, 50.0, 100.0, 100.0)  # touches the right and bottom border
    exact = parse_box("{<50><50><100><100>}", width, height)
    assert refer_iou(exact, target) == 1.0
    assert refer_iou(exact, target, reference_rule=True) == 1.0
    # Coordinates past the border are clamped to it, so they still hit.
    beyond = parse_box("{<50><50><120><130>}", width, height)
    assert refer_correct(beyond, target)
    # A zero-width box on the border: no area, but the +1 rule gives it 101 px of overlap.
    line = (100.0, 50.0, 100.0, 100.0)
    assert refer_iou(line, target) == 0.0
    assert refer_iou(line, target, reference_rule=True) == pytest.approx(51 / (51 * 51))


# -- VQA accuracy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two", "2"),
        ("the dog.", "dog"),
        ("1,000", "1000"),
        ("2.5", "2.5"),
        ("black/white", "black white"),
        ("yes, it is", "yes it is"),
        ("dont", "don't"),
        ("isnt it", "isn't it"),
        ("none", "0"),  # the official number map's quirk
        ("A\tcat\n", "cat"),
    ],
)
def test_vqa_normalisation(raw, normalised):
    assert normalize_vqa_answer(raw) == normalised


def test_vqa_accuracy_leave_one_out():
    # 3 of 10 humans said "dog": leaving out a "dog" leaves 2 matches (2/3), any other 3 (1).
    answers = ["dog"] * 3 + ["cat"] * 7
    assert vqa_accuracy("the dog.", answers) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)
    # One match: 0 when that answer is left out, 1/3 otherwise.
    assert vqa_accuracy("dog", ["dog"] + ["cat"] * 9) == pytest.approx(9 * (1 / 3) / 10)
    assert vqa_accuracy("bird", answers) == 0.0
    assert vqa_accuracy(None, answers) == 0.0


def test_vqa_accuracy_number_words_and_commas():
    assert vqa_accuracy("two", ["2"] * 10) == 1.0
    assert vqa_accuracy("1,000", ["1000"] * 10) == 1.0
    # Disagreeing humans get the punctuation rule too: "1,000" and "1000" become one answer.
    assert vqa_accuracy("1000", ["1,000"] * 5 + ["1000"] * 5) == 1.0
    assert vqa_accuracy("dont know", ["don't know"] * 4 + ["no"] * 6) == pytest.approx(1.0)


def test_vqa_reference_rule_differs_where_minigptv2s_copy_does():
    # Unanimous answers: MiniGPT-v2's copy normalises nothing, so "two" misses "2"...
    assert vqa_accuracy("two", ["2"] * 10, reference_rule=True) == 0.0
    # ...but it ignores case, which the official scorer does not do for the human answers.
    assert vqa_accuracy("dog", ["Dog"] * 10, reference_rule=True) == 1.0
    assert vqa_accuracy("dog", ["Dog"] * 10) == 0.0


def test_vqa_official_rule_leaves_the_human_answers_unstripped():
    # The official vqaEval.py cleans only the prediction (tabs, newlines, ends); a human answer
    # with a trailing space never equals a cleaned prediction...
    answers = ["dog "] * 3 + ["cat"] * 7
    assert vqa_accuracy("dog", answers) == 0.0
    # ...while MiniGPT-v2's copy strips the human answers too.
    assert vqa_accuracy("dog", answers, reference_rule=True) == pytest.approx(0.9)
    # "Unanimous" is decided on the raw answers: a stray space makes these disagree, so all get
    # the punctuation rule and "t-shirt" becomes "t shirt" on both sides.
    answers = ["t-shirt"] * 9 + ["t-shirt "]
    assert vqa_accuracy("t-shirt", answers) == 1.0
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0  # unanimous: compared as written


def test_vizwiz_reference_accuracy_is_the_simplified_rule():
    answers = ["unanswerable"] * 2 + ["Red"] * 8
    assert vizwiz_reference_accuracy("red", answers) == 1.0
    assert vizwiz_reference_accuracy("Unanswerable", answers) == pytest.approx(2 / 3)
    assert vqa_accuracy("unanswerable", answers) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)


def test_gqa_is_exact_after_case_and_spaces():
    assert gqa_correct(" Yes ", "yes")
    assert not gqa_correct("yes.", "yes")
    assert not gqa_correct(None, "yes")


# -- binary decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("True.", True), ("false, because", False), ("maybe", None), ("", None)],
)
def test_parse_binary(text, expected):
    assert parse_binary(text, "true", "false") is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No, there is not.", False),
        ("Yes, there is a dog.", True),
        ("I do not see one", False),
        ("Yes. No cat here.", True),  # only the first sentence counts
        ("There is a dog in the image.", None),
    ],
)
def test_pope_answer(text, expected):
    assert pope_answer(text) is expected


def test_binary_scores_count_unparsable_as_wrong_and_never_yes():
    predictions = [True, True, False, None, False, True]
    labels = [True, False, False, True, True, True]
    scores = binary_scores(predictions, labels)
    assert (scores.true_positives, scores.false_positives) == (2, 1)
    assert (scores.true_negatives, scores.false_negatives, scores.unparsable) == (1, 1, 1)
    assert scores.n == 6
    assert scores.accuracy == pytest.approx(3 / 6)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 4)  # the unparsed "yes" item is a missed positive
    assert scores.f1 == pytest.approx(4 / 7)
    assert scores.yes_ratio == pytest.approx(3 / 6)


def test_auroc_counts_ties_half():
    assert auroc([0.9, 0.8, 0.3, 0.3], [True, False, True, False]) == pytest.approx(2.5 / 4)
    assert auroc([0.1, 0.2], [False, True]) == 1.0
    assert auroc([0.1, 0.2], [True, True]) is None


# -- CHAIR and detection ----------------------------------------------------------------------


def test_chair_counts_mentions_captions_and_recall():
    mentions = [["dog", "dog", "cat"], ["person"], []]
    truth = [{"dog", "person"}, {"person", "car"}, {"bus"}]
    scores = chair_scores(mentions, truth)
    assert scores.chair_i == pytest.approx(1 / 4)  # "cat" among four mentions
    assert scores.chair_s == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(2 / 5)  # dog, person of {dog, person, car, person, bus}
    assert (scores.mentions, scores.hallucinated_mentions) == (4, 1)


def test_detection_scores_pool_images():
    pooled = detection_scores(
        [[(0, 0, 10, 10)], [(0, 0, 10, 10), (50, 50, 60, 60)]],
        [[(0, 0, 10, 10)], [(1, 1, 10, 10)]],
    )
    assert pooled == Matching(true_positives=2, predicted=3, targets=2)
    assert pooled.precision == pytest.approx(2 / 3) and pooled.recall == 1.0
