"""Metrics as pure functions of predictions and ground truth (no model, no files).

Boxes are ``(x1, y1, x2, y2)`` in pixels of the original image (``minigptv2.boxes.Box``).

Each metric follows the definition its benchmark's official scorer uses, and says where it
departs from MiniGPT-v2's evaluation scripts (spec §6, §10):

* VQA accuracy (OK-VQA, VQAv2, VizWiz): the VQA evaluation (Antol et al. 2015, ``vqaEval.py``):
  answer normalisation, then ``min(1, matches / 3)`` averaged over the ten leave-one-out subsets
  of the human answers. ``reference_rule=True`` gives the variant the MiniGPT-v2 scripts ran.
* GQA: exact match of the lower-cased answer (the official GQA ``eval.py`` compares strings).
* VSR, Hateful Memes, POPE: binary decisions; accuracy, precision, recall, F1, yes-ratio, AUROC.
* RefCOCO/+/g: Acc@0.5 per *expression* (never per image) and mean IoU.
* CHAIR (Rohrbach et al. 2018): CHAIR_i, CHAIR_s and object recall over canonical COCO objects.
* Detection: one-to-one box matching at IoU 0.5, precision/recall/F1.

An answer that cannot be parsed is passed as ``None`` and always counts as a miss.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from minigptv2.boxes import Box, iou, iou_inclusive
from minigptv2.constants import BOX_BINS, UNK

IOU_THRESHOLD = 0.5


# ---------------------------------------------------------------------------------------------
# Referring expressions
# ---------------------------------------------------------------------------------------------


def refer_iou(predicted: Box | None, target: Box, *, reference_rule: bool = False) -> float:
    """IoU of one expression's predicted box with its target; 0.0 when nothing was parsed."""
    if predicted is None:
        return 0.0
    return iou_inclusive(predicted, target) if reference_rule else iou(predicted, target)


def refer_correct(predicted: Box | None, target: Box, *, reference_rule: bool = False) -> bool:
    """Referring-expression hit: IoU >= 0.5 (``reference_rule``: the RefCOCO script's rule).

    MiniGPT-v2's RefCOCO script uses the "+1 pixel" IoU and a strict ``> 0.5`` (spec §6.2); that
    rule reproduces its published numbers. An unparsable answer (``None``) is a miss.
    """
    if predicted is None:
        return False
    overlap = refer_iou(predicted, target, reference_rule=reference_rule)
    return overlap > IOU_THRESHOLD if reference_rule else overlap >= IOU_THRESHOLD


# MiniGPT-v2's eval_ref.py accepts an answer only if, once "<unk>" and every space are deleted
# and the ends stripped, it *starts* with this box (re.match, so trailing text is allowed).
_REFERENCE_BOX = re.compile(r"\{<\d{1,3}><\d{1,3}><\d{1,3}><\d{1,3}>\}")
# It then takes every integer of the whole answer; Python's \d also matches non-ASCII digits.
_REFERENCE_INTEGER = re.compile(r"\d+")


def reference_refer_box(answer: str, width: float, height: float) -> Box | None:
    """The box MiniGPT-v2's RefCOCO script reads from ``answer``, or None where it scores a miss.

    Unlike ``boxes.parse_box`` nothing is repaired: corners are not reordered (a flipped box has
    no overlap under ``iou_inclusive``), values over 100 are not clamped (they land outside the
    image), the box must open the answer, and any integer after it (a second box, a count) makes
    the script's four-way unpack fail, which it counts as a miss.
    """
    cleaned = answer.replace(UNK, "").replace(" ", "").strip()
    if _REFERENCE_BOX.match(cleaned) is None:
        return None
    integers = _REFERENCE_INTEGER.findall(cleaned)
    if len(integers) != 4:  # counted before int(): a 5000-digit run would make int() raise
        return None
    x1, y1, x2, y2 = (int(value) for value in integers)
    # The script's arithmetic and order: value / 100.0 * size (its --res defaults to 100.0).
    res = float(BOX_BINS)
    return (x1 / res * width, y1 / res * height, x2 / res * width, y2 / res * height)


@dataclass(frozen=True)
class ReferScores:
    acc50: float
    mean_iou: float
    n: int
    unparsable: int


def refer_scores(
    predicted: Sequence[Box | None], targets: Sequence[Box], *, reference_rule: bool = False
) -> ReferScores:
    """Acc@0.5 and mean IoU over expressions: one prediction per expression, in order.

    With ``reference_rule`` and boxes from ``reference_refer_box`` this counts exactly what
    MiniGPT-v2's ``eval_ref.py`` counts (``iou_inclusive`` returns 0.0 where the script divides
    by a zero or negative union, which it scores as a miss too).
    """
    if len(predicted) != len(targets):
        raise ValueError(f"{len(predicted)} predictions for {len(targets)} expressions")
    if not targets:
        return ReferScores(0.0, 0.0, 0, 0)
    hits = [
        refer_correct(p, t, reference_rule=reference_rule)
        for p, t in zip(predicted, targets, strict=True)
    ]
    overlaps = [
        refer_iou(p, t, reference_rule=reference_rule)
        for p, t in zip(predicted, targets, strict=True)
    ]
    return ReferScores(
        acc50=sum(hits) / len(hits),
        mean_iou=sum(overlaps) / len(overlaps),
        n=len(targets),
        unparsable=sum(p is None for p in predicted),
    )


# ---------------------------------------------------------------------------------------------
# VQA accuracy (official VQA evaluation)
# ---------------------------------------------------------------------------------------------

# The official normaliser's data, as published with the VQA evaluation code.
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-")
_PUNCTUATION += (">", "<", "@", "`", ",", "?", "!")
_NUMBER_WORDS = {
    "none": "0",  # sic: the official map turns "none" into "0"
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# A period not followed by a digit is dropped ("dog." -> "dog", "2.5" stays). The official
# pattern's "(?!<=\d)" is a typo for a look-behind and is in fact a no-op look-ahead; kept as is.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")


def _contractions() -> dict[str, str]:
    """Apostrophe-less spellings -> their contraction, one ``bare=contracted`` pair per word."""
    pairs = """
    aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't
    couldn'tve=couldn't've couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't
    hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd
    hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's Id've=I'd've
    I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll
    let's=let's maam=ma'am mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've
    mightve=might've mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock
    oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't
    shed've=she'd've she'dve=she'd've she's=she's shouldve=should've shouldnt=shouldn't
    shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
    somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll
    somebodys=somebody's someoned=someone'd someoned've=someone'd've someone'dve=someone'd've
    someonell=someone'll someones=someone's somethingd=something'd
    somethingd've=something'd've something'dve=something'd've somethingll=something'll
    thats=that's thered=there'd thered've=there'd've there'dve=there'd've therere=there're
    theres=there's theyd=they'd theyd've=they'd've they'dve=they'd've theyll=they'll
    theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've we'dve=we'd've
    weve=we've werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've
    whens=when's whered=where'd wheres=where's whereve=where've whod=who'd whod've=who'd've
    who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're whys=why's
    wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've wouldn'tve=wouldn't've
    yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've y'alld've=y'all'd've
    y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've youll=you'll
    youre=you're youve=you've
    """
    return dict(pair.split("=", 1) for pair in pairs.split())


_CONTRACTIONS = _contractions()


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The official punctuation rule.

    Each punctuation mark is deleted when it touches a space or the text has a digit-comma-digit
    ("1,000"), otherwise replaced by a space ("black/white" -> "black white"); then periods not
    followed by a digit are removed ("dog." -> "dog", "2.5" stays).
    """
    result = text
    delete = _DIGIT_COMMA.search(text) is not None
    for mark in _PUNCTUATION:
        if delete or f"{mark} " in text or f" {mark}" in text:
            result = result.replace(mark, "")
        else:
            result = result.replace(mark, " ")
    return _PERIOD.sub("", result)


def process_digit_article(text: str) -> str:
    """The official word rule: lower-case, number words -> digits, drop articles, contractions."""
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words)


def normalize_vqa_answer(text: str) -> str:
    """An answer as the VQA evaluation compares it: ``"The two dogs."`` -> ``"2 dogs"``."""
    return process_digit_article(process_punctuation(_clean(text)))


def vqa_accuracy(
    prediction: str | None, answers: Sequence[str], *, reference_rule: bool = False
) -> float:
    """Official VQA accuracy of one prediction against the human answers (usually ten).

    As in the official ``vqaEval.py``: the prediction is always cleaned (tabs and newlines to
    spaces, ends stripped) and normalised; the human answers are used as stored, with the
    punctuation rule only when they disagree (decided on the stored strings, so "dog" and "dog "
    disagree), and are never stripped or lower-cased. For each answer left out in turn, the
    prediction scores ``min(1, matches among the others / 3)``; the question's accuracy is the
    mean over those subsets.

    ``reference_rule`` is the variant in MiniGPT-v2's copy of ``vqaEval.py``: the human answers
    are cleaned like the prediction, nothing is normalised when they are unanimous, both sides
    get both rules otherwise, and the comparison ignores case.
    """
    if prediction is None or not answers:
        return 0.0
    guess = _clean(prediction)
    if reference_rule:
        truths = [_clean(answer) for answer in answers]
        if len(set(truths)) > 1:
            truths = [process_digit_article(process_punctuation(t)) for t in truths]
            guess = process_digit_article(process_punctuation(guess))
        truths, guess = [t.lower() for t in truths], guess.lower()
    else:
        truths = list(answers)
        guess = process_digit_article(process_punctuation(guess))
        if len(set(truths)) > 1:
            truths = [process_punctuation(t) for t in truths]
    matches = sum(truth == guess for truth in truths)
    # Leaving out answer i removes one match exactly when answer i itself matched.
    per_subset = [min(1.0, (matches - (truth == guess)) / 3) for truth in truths]
    return sum(per_subset) / len(per_subset)


def vizwiz_reference_accuracy(prediction: str | None, answers: Sequence[str]) -> float:
    """MiniGPT-v2's simplified VizWiz score: ``min(1, exact case-insensitive matches / 3)``.

    No normalisation and no leave-one-out averaging (spec §10.10); kept only to compare with the
    paper's VizWiz number. Use ``vqa_accuracy`` for the official metric.
    """
    if prediction is None:
        return 0.0
    guess = prediction.strip().lower()
    return min(1.0, sum(answer.strip().lower() == guess for answer in answers) / 3)


# ---------------------------------------------------------------------------------------------
# Exact match (GQA, Shapes)
# ---------------------------------------------------------------------------------------------


def gqa_correct(prediction: str | None, answer: str) -> bool:
    """GQA's rule: the answer string itself, compared after lower-casing and trimming spaces."""
    return prediction is not None and prediction.strip().lower() == answer.strip().lower()


def _normalise_answer(text: str) -> str:
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(word for word in text.split() if word not in _ARTICLES)


# Korean short answers (the Shapes world's, minigptv2.data.shapes_languages.KOREAN). Spacing is
# dropped, as writers space Korean differently ("빨간 원" / "빨간원", "두 개" / "두개"). First one
# polite or copula ending is dropped ("빨간색이에요", "원입니다", "두 개요", "아니에요"); then yes
# and no take their common variants, a count is a number whatever its form ("두 개", "2개",
# "둘", "2"), and "없어요"-like answers are 0. Particles and other words stay, and a colour must
# be named as the answer key names it ("빨간색", not "빨강").
_KOREAN_YES = frozenset({"네", "예", "응"})
_KOREAN_NO = frozenset({"아니요", "아니오", "아뇨", "아니"})
_KOREAN_NONE = frozenset({"없어", "없음", "없습니다", "하나도없어", "영"})
_KOREAN_ENDINGS = ("입니다", "이에요", "이어요", "예요", "에요", "이요", "이야", "이다", "요")
_KOREAN_NUMERALS = ("한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열")
_KOREAN_ALONE = ("하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉", "열")
_KOREAN_COUNTS = {
    **{f"{numeral}개": str(n) for n, numeral in enumerate(_KOREAN_NUMERALS, start=1)},
    **{word: str(n) for n, word in enumerate(_KOREAN_ALONE, start=1)},
}
_DIGITS = re.compile(r"(\d+)개?")


def normalise_korean_answer(text: str) -> str:
    """A Korean short answer as Shapes scores it: ``"두 개예요."`` -> ``"2"``, ``"빨간 원이에요"``
    -> ``"빨간원"``, ``"예"`` -> ``"네"``, ``"없어요"`` -> ``"0"`` (rules in the comment above)."""
    compact = "".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    for ending in _KOREAN_ENDINGS:
        if compact.endswith(ending) and len(compact) > len(ending):
            compact = compact.removesuffix(ending)
            break
    if compact in _KOREAN_YES:
        return "네"
    if compact in _KOREAN_NO:
        return "아니요"
    if compact in _KOREAN_NONE:
        return "0"
    if compact in _KOREAN_COUNTS:
        return _KOREAN_COUNTS[compact]
    if digits := _DIGITS.fullmatch(compact):
        return str(int(digits.group(1)))
    return compact


# How an answer is normalised before exact matching, per language of the answer key.
ANSWER_NORMALISERS: dict[str, Callable[[str], str]] = {
    "en": _normalise_answer,
    "ko": normalise_korean_answer,
}


def exact_match(predicted: str, target: str, language: str = "en") -> bool:
    """Equality after the ``language``'s normalisation: English is case-, punctuation- and
    article-insensitive ("The dog." == "dog"); Korean is ``normalise_korean_answer``."""
    if language not in ANSWER_NORMALISERS:
        raise ValueError(
            f"no answer normalisation for language {language!r}; known: "
            f"{', '.join(ANSWER_NORMALISERS)}"
        )
    normalise = ANSWER_NORMALISERS[language]
    return normalise(predicted) == normalise(target)


# ---------------------------------------------------------------------------------------------
# Binary decisions (VSR, Hateful Memes, POPE)
# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+")


def parse_binary(text: str, positive: str, negative: str) -> bool | None:
    """True/False when the answer's first word is ``positive``/``negative``, else None.

    ``"Yes, there is a dog."`` -> True for ("yes", "no"); ``"maybe"`` -> None (a miss).
    """
    first = _WORD.search(text.lower())
    if first is None:
        return None
    word = first.group()
    if word == positive:
        return True
    if word == negative:
        return False
    return None


def pope_answer(text: str) -> bool | None:
    """POPE's rule, read tolerantly: the first sentence means "no" if it has "no" or "not".

    The official script calls every other answer "yes" (``pope_answer_official``); here only an
    answer with the word "yes" is a "yes" and anything else is None (a miss), so a model that
    rambles is not rewarded on the "yes" half. Words are compared case-insensitively and without
    their punctuation ("NO!" is a no).
    """
    words = [word.strip("!?;:\"'").lower() for word in text.split(".")[0].replace(",", "").split()]
    if "no" in words or "not" in words:
        return False
    if "yes" in words:
        return True
    return None


# The POPE authors' evaluate.py: these exact, case-sensitive words mean "no".
_POPE_NO_WORDS = frozenset({"No", "not", "no"})


def pope_answer_official(text: str) -> bool:
    """The official POPE script's reading: True ("yes") unless the first sentence says no.

    The first sentence is the text before the first "."; commas are deleted and the rest is split
    on single spaces, so "NO", "Not" and "No!" are not "no" words, and neither is a "no" followed
    by a newline. Every answer is a yes or a no; nothing is unparsable.
    """
    words = text.split(".")[0].replace(",", "").split(" ")
    return _POPE_NO_WORDS.isdisjoint(words)


@dataclass(frozen=True)
class BinaryScores:
    """Counts of a yes/no benchmark; unparsed predictions are wrong and never count as "yes"."""

    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    unparsed_positives: int = 0  # label yes, answer unparsable
    unparsed_negatives: int = 0  # label no, answer unparsable

    @property
    def unparsable(self) -> int:
        return self.unparsed_positives + self.unparsed_negatives

    @property
    def n(self) -> int:
        correct = self.true_positives + self.true_negatives
        return correct + self.false_positives + self.false_negatives + self.unparsable

    @property
    def accuracy(self) -> float:
        return (self.true_positives + self.true_negatives) / self.n if self.n else 0.0

    @property
    def precision(self) -> float:
        said_yes = self.true_positives + self.false_positives
        return self.true_positives / said_yes if said_yes else 0.0

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives + self.unparsed_positives
        return self.true_positives / positives if positives else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def yes_ratio(self) -> float:
        return (self.true_positives + self.false_positives) / self.n if self.n else 0.0


def binary_scores(predictions: Sequence[bool | None], labels: Sequence[bool]) -> BinaryScores:
    """Confusion counts with "yes"/True as the positive class."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    tp = sum(p is True and y for p, y in zip(predictions, labels, strict=True))
    fp = sum(p is True and not y for p, y in zip(predictions, labels, strict=True))
    tn = sum(p is False and not y for p, y in zip(predictions, labels, strict=True))
    fn = sum(p is False and y for p, y in zip(predictions, labels, strict=True))
    missing = [y for p, y in zip(predictions, labels, strict=True) if p is None]
    return BinaryScores(tp, fp, tn, fn, sum(missing), len(missing) - sum(missing))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None when only one class is present.

    Computed as the Mann-Whitney statistic: the chance that a random positive scores above a
    random negative.
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    values = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(labels, dtype=bool)
    positives, negatives = values[truth], values[~truth]
    if positives.size == 0 or negatives.size == 0:
        return None
    above = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((above + 0.5 * ties) / (positives.size * negatives.size))


# ---------------------------------------------------------------------------------------------
# CHAIR (object hallucination in captions)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChairScores:
    chair_i: float  # hallucinated object mentions / all object mentions
    chair_s: float  # captions with at least one hallucinated object / all captions
    recall: float  # ground-truth objects mentioned / ground-truth objects (summed over images)
    mentions: int
    hallucinated_mentions: int
    captions: int
    hallucinated_captions: int


def chair_scores(
    mentions: Sequence[Sequence[str]], ground_truth: Sequence[Collection[str]]
) -> ChairScores:
    """CHAIR over captions, given each caption's canonical COCO object mentions (with repeats).

    Every mention counts for CHAIR_i, as in the official script ("two dogs and a dog" is two
    mentions); recall counts each ground-truth object of an image once.
    """
    if len(mentions) != len(ground_truth):
        raise ValueError(f"{len(mentions)} captions for {len(ground_truth)} ground-truth sets")
    total = hallucinated = bad_captions = recalled = truths = 0
    for objects, truth in zip(mentions, ground_truth, strict=True):
        wrong = [obj for obj in objects if obj not in truth]
        total += len(objects)
        hallucinated += len(wrong)
        bad_captions += bool(wrong)
        recalled += len(set(objects) & set(truth))
        truths += len(set(truth))
    return ChairScores(
        chair_i=hallucinated / total if total else 0.0,
        chair_s=bad_captions / len(mentions) if mentions else 0.0,
        recall=recalled / truths if truths else 0.0,
        mentions=total,
        hallucinated_mentions=hallucinated,
        captions=len(mentions),
        hallucinated_captions=bad_captions,
    )


# ---------------------------------------------------------------------------------------------
# Box sets (detection, grounded captions)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matching:
    """Greedy one-to-one matching of predicted to target boxes at an IoU threshold."""

    true_positives: int
    predicted: int
    targets: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.targets if self.targets else 0.0

    @property
    def f1(self) -> float:
        total = self.predicted + self.targets
        return 2 * self.true_positives / total if total else 0.0

    def __add__(self, other: Matching) -> Matching:
        return Matching(
            self.true_positives + other.true_positives,
            self.predicted + other.predicted,
            self.targets + other.targets,
        )


def matched_targets(
    predicted: Sequence[Box], targets: Sequence[Box], threshold: float = IOU_THRESHOLD
) -> set[int]:
    """Indices of the targets that ``match_boxes`` pairs with a predicted box."""
    pairs = sorted(
        ((iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(targets)),
        reverse=True,
    )
    used_predicted: set[int] = set()
    used_targets: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_predicted and j not in used_targets:
            used_predicted.add(i)
            used_targets.add(j)
    return used_targets


def match_boxes(
    predicted: Sequence[Box], targets: Sequence[Box], threshold: float = IOU_THRESHOLD
) -> Matching:
    """Pairs in order of decreasing IoU, each box used at most once (duplicates are misses)."""
    matched = matched_targets(predicted, targets, threshold)
    return Matching(len(matched), len(predicted), len(targets))


def detection_scores(
    predicted: Sequence[Sequence[Box]], targets: Sequence[Sequence[Box]]
) -> Matching:
    """Precision/recall/F1 at IoU 0.5 pooled over images (micro-averaged)."""
    if len(predicted) != len(targets):
        raise ValueError(f"{len(predicted)} predictions for {len(targets)} images")
    total = Matching(0, 0, 0)
    for boxes, truth in zip(predicted, targets, strict=True):
        total = total + match_boxes(boxes, truth)
    return total
