"""The Shapes world in Korean: particles, well-formed samples of every task, English unchanged.

Korean sample ``i`` is the translation of English sample ``i`` (same scene, same question, same
template position), and the English samples are checked against the scene by test_shapes.py; so
most checks here translate the English text with an independent word list and compare.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from minigptv2.boxes import parse_grounding
from minigptv2.data.shapes import (
    CONVERSATION,
    LANGUAGE,
    OWN_ROWS,
    SHAPES_MIX,
    TASK_BUILDERS,
    WORLDS,
    ShapesConfig,
    ShapesDataset,
    make_pack,
    make_sample,
)
from minigptv2.data.shapes_languages import (
    ENGLISH,
    KOREAN,
    LEXICONS,
    compose,
    final_consonant,
    particle,
)
from minigptv2.errors import ConfigError
from minigptv2.tasks import INSTRUCTION_POOLS, KOREAN_INSTRUCTION_POOLS, TASK_TOKENS, task_of

KO = ShapesConfig(language="ko")
MIXED = ShapesConfig(language="en+ko")
PER_TASK = 60
SCENE_TASKS = [task for task in TASK_BUILDERS if task != LANGUAGE]

# An independent word list: the English world's words in Korean.
COLOR = {"red": "빨간", "green": "초록", "blue": "파란", "yellow": "노란"}
COLOR_ANSWER = {"red": "빨간색", "green": "초록색", "blue": "파란색", "yellow": "노란색"}
SHAPE = {"circle": "원", "square": "사각형", "triangle": "삼각형"}
NUMBER = {"a": "한", "two": "두", "three": "세", "four": "네"}
PLACE = {
    "on the left": "왼쪽", "on the right": "오른쪽",
    "at the top": "위쪽", "at the bottom": "아래쪽",
    "to the left of": "왼쪽", "to the right of": "오른쪽", "above": "위", "below": "아래",
}  # fmt: skip
RELATION = "to the left of|to the right of|above|below"
DIRECTION = "on the left|on the right|at the top|at the bottom"
COLORS, SHAPES = "|".join(COLOR), "|".join(SHAPE)


# --------------------------------------------------------------------------------------------------
# Particles
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "forms", "expected"),
    [
        ("원", "이/가", "이"), ("물체", "이/가", "가"), ("사각형", "을/를", "을"),
        ("물체", "을/를", "를"), ("삼각형", "은/는", "은"), ("도형", "은/는", "은"),
        ("물체", "은/는", "는"), ("한 개", "과/와", "와"), ("빨간 원", "과/와", "과"),
        ("집", "(으)로", "으로"), ("서울", "(으)로", "로"), ("바다", "(으)로", "로"),
        # What follows the last syllable is silent: a box, a closing tag, punctuation.
        ("<p>빨간 원</p> {<1><2><30><40>}", "과/와", "과"),
        ("<p>빨간 원 한 개</p> {<1><2><30><40>}", "과/와", "와"),
        ("물체?", "이/가", "가"),
    ],
)  # fmt: skip
def test_particle_follows_the_final_consonant(word, forms, expected):
    assert particle(word, forms) == expected


def test_final_consonants_and_errors():
    assert final_consonant("가") == 0 and final_consonant("각") == 1 and final_consonant("갈") == 8
    assert final_consonant("힣") == 27  # the last syllable of the block
    with pytest.raises(ValueError, match="no Hangul"):
        particle("{<1><2><3><4>}", "이/가")
    with pytest.raises(ValueError, match="A/B"):
        particle("원", "이")


def test_compose_fills_slots_and_particles():
    assert compose("{name}{이/가} 있나요?", name="빨간 원") == "빨간 원이 있나요?"
    assert compose("{name}{이/가} 있나요?", name="빨간 물체") == "빨간 물체가 있나요?"
    assert compose("{}{과/와} {}", "원 두 개", "사각형") == "원 두 개와 사각형"
    # A value's own braces (the box grammar) are never read as slots.
    box = "{<1><2><3><4>}"
    assert (
        compose("{box}에 있는 물체는 무슨 색인가요?", box=box)
        == f"{box}에 있는 물체는 무슨 색인가요?"
    )


def test_english_patterns_compose_as_str_format():
    values = {key: f"<{key}>" for key in ("color", "shape", "name", "noun", "number", "box")}
    values |= {key: f"<{key}>" for key in ("expression", "direction", "relation", "landmark")}
    values["subject"] = "<subject>"
    for pattern in ENGLISH.patterns.values():
        assert compose(pattern, "<a>", "<b>", **values) == pattern.format("<a>", "<b>", **values)
    for pool in INSTRUCTION_POOLS.values():
        for template in pool:
            assert compose(template, "<x>") == template.format("<x>")


# --------------------------------------------------------------------------------------------------
# The lexicons as data
# --------------------------------------------------------------------------------------------------


def test_every_lexicon_has_the_english_shape():
    # Same keys and same pool sizes: a template is drawn by index, so the twins stay in step.
    for lexicon in LEXICONS.values():
        assert set(lexicon.patterns) == set(ENGLISH.patterns)
        for table in ("colors", "color_answers", "shapes", "directions", "relations"):
            assert set(getattr(lexicon, table)) == set(getattr(ENGLISH, table)), table
        assert len(lexicon.numbers) == len(ENGLISH.numbers)
        assert len(lexicon.count_answers) == len(ENGLISH.count_answers)
        assert {task: len(pool) for task, pool in lexicon.pools.items()} == {
            task: len(pool) for task, pool in INSTRUCTION_POOLS.items()
        }
        assert len(lexicon.language_lists) == len(ENGLISH.language_lists)
        assert [asked for _, asked in lexicon.language_questions] == [
            asked for _, asked in ENGLISH.language_questions
        ]


def test_korean_pools_keep_the_task_tokens_and_one_slot():
    for task, pool in KOREAN_INSTRUCTION_POOLS.items():
        english = INSTRUCTION_POOLS[task]
        for template, reference in zip(pool, english, strict=True):
            assert template.startswith(f"[{task}] ") and task_of(template) == task
            assert template.count("{}") == reference.count("{}")
            # After a box only particles that never change: the box has no final syllable.
            if task == "identify":
                assert not re.search(r"\{\}\{", template), template


def test_unknown_languages_are_refused():
    for language in ("fr", "en+en", "", "ko+", "EN"):
        with pytest.raises(ConfigError, match="unknown Shapes language"):
            ShapesConfig(language=language)


# --------------------------------------------------------------------------------------------------
# English is unchanged
# --------------------------------------------------------------------------------------------------

ADDED = ("language", "named")  # target keys added with the Korean world


def earlier(targets: dict) -> dict:
    kept = {key: value for key, value in targets.items() if key not in ADDED}
    if "turns" in kept:
        kept["turns"] = [earlier(turn) for turn in kept["turns"]]
    return kept


def digests(samples) -> tuple[str, str, str]:
    text, image, targets = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    for s in samples:
        turns = [[t.user, t.assistant] for t in s.turns]
        text.update(json.dumps([s.task, s.packed, turns]).encode())
        if s.image is not None:
            image.update(repr(s.image.size).encode() + s.image.tobytes())
        targets.update(json.dumps(earlier(s.targets), sort_keys=True).encode())
    return text.hexdigest()[:16], image.hexdigest()[:16], targets.hexdigest()[:16]


def test_english_samples_are_those_of_before_the_korean_world():
    # (text, images, targets) digests taken at 486789a, before any language existed: the default
    # mix (conversations included), every builder (text-only rows included) on train, test and
    # test-wide, the varied world, and packs of the varied world. Text and target digests taken
    # again when training questions stopped naming absent held-out pairs (images unchanged).
    single = {task: w for task, w in SHAPES_MIX.items() if task not in OWN_ROWS}
    sets = {
        "mix": [make_sample(i, "train") for i in range(60)],
        "tasks": [
            make_sample(i, split, task=task)
            for task in TASK_BUILDERS
            for split in ("train", "test", "test-wide")
            for i in range(6)
        ],
        "varied": [make_sample(i, "train", WORLDS["varied"]) for i in range(20)],
        "packs": [make_pack(i, "train", single, 6, WORLDS["varied"]) for i in range(8)],
    }
    expected = {
        "mix": ("81acc716ed9bf151", "6f2d80b66a8f8e4b", "a11fd780f8b5aa04"),
        "tasks": ("2df70718f1f208c7", "9c14989873a7e8f6", "1d8cc3d5f8271dfd"),
        "varied": ("89e3ea139684c4ae", "793d4a2dad3e9300", "f52682999c6fbb8b"),
        "packs": ("b941f5460ab4b2ec", "31977bb020aaf7e9", "baf1a55ca3822c2f"),
    }
    assert {name: digests(samples) for name, samples in sets.items()} == expected
    # And by eye: three samples' text.
    assert make_sample(0, "train", task="caption").turns[0].assistant == (
        "a green square and a red square"
    )
    assert make_sample(2, "train", task="refer").turns[0].user == "[refer] the yellow square"
    vqa = make_sample(0, "train", task="vqa").turns[0]
    assert vqa.user.endswith("what color is the object at {<3><50><33><79>}?")
    assert vqa.assistant == "green"


# --------------------------------------------------------------------------------------------------
# Korean samples: the translation of their English twins
# --------------------------------------------------------------------------------------------------


def noun_phrase(words: str) -> str:
    """``red circle`` -> ``빨간 원``, ``circle`` -> ``원``, ``red object`` -> ``빨간 물체``."""
    out = []
    for word in words.split():
        out.append(COLOR.get(word) or SHAPE.get(word) or {"object": "물체", "shape": "도형"}[word])
    return " ".join(out)


def expression(english: str) -> str:
    if m := re.fullmatch(f"the (.+?) ({RELATION}) the (.+)", english):
        head, words, landmark = m.groups()
        return f"{noun_phrase(landmark)} {PLACE[words]}에 있는 {noun_phrase(head)}"
    if m := re.fullmatch(f"the (.+?) ({DIRECTION})", english):
        head, words = m.groups()
        return f"{PLACE[words]}에 있는 {noun_phrase(head)}"
    return noun_phrase(english.removeprefix("the "))


def phrase(english: str) -> str:
    """A detection or grounding phrase, or a caption."""
    parts = re.split(r", | and ", english)
    if len(parts) > 1:
        items = [phrase(part) for part in parts]
        return ", ".join(items[:-1]) + "와 " + items[-1]  # every counted phrase ends in 개
    if m := re.fullmatch(f"(a|two|three|four) ((?:{COLORS}) (?:{SHAPES}))s?", english):
        number, name = m.groups()
        return f"{noun_phrase(name)} {NUMBER[number]} 개"
    if english.startswith("the "):
        return expression(english)
    if m := re.fullmatch(f"((?:{COLORS}) )?({SHAPES}|shape)s", english):
        return "모든 " + noun_phrase(english[:-1])
    raise AssertionError(f"unexpected English phrase {english!r}")


def vqa_question(english: str) -> str:
    if english == "how many shapes are there?":
        return "도형은 모두 몇 개 있나요?"
    if m := re.fullmatch(f"how many ({COLORS}) shapes are there\\?", english):
        return f"{COLOR[m[1]]} 도형은 몇 개 있나요?"
    if m := re.fullmatch("how many (.+)s are there\\?", english):
        return f"{noun_phrase(m[1])}이 몇 개 있나요?"  # every shape ends in a consonant
    if m := re.fullmatch("what color is the object at (.+)\\?", english):
        return f"{m[1]}에 있는 물체는 무슨 색인가요?"
    if m := re.fullmatch("what (color|shape) is (.+)\\?", english):
        subject = expression(m[2])
        topic = "는" if subject.endswith("물체") else "은"
        return subject + topic + (" 무슨 색인가요?" if m[1] == "color" else " 어떤 모양인가요?")
    if m := re.fullmatch("is there a (.+)\\?", english):
        return f"{noun_phrase(m[1])}이 있나요?"
    if m := re.fullmatch(f"is the (.+?) ({RELATION}) the (.+)\\?", english):
        subject, words, landmark = m.groups()
        return f"{noun_phrase(subject)}이 {noun_phrase(landmark)} {PLACE[words]}에 있나요?"
    raise AssertionError(f"unexpected English question {english!r}")


def answer(english: str) -> str:
    counts = ["없어요", "한 개", "두 개", "세 개", "네 개"]
    words = {"yes": "네", "no": "아니요", **COLOR_ANSWER, **SHAPE}
    return counts[int(english)] if english.isdigit() else words.get(english) or noun_phrase(english)


STRUCTURE = ("objects", "kind", "object", "landmark", "relation", "boxes", "count", "named")


def twins(task: str, split: str = "train", n: int = PER_TASK):
    for index in range(n):
        yield make_sample(index, split, task=task), make_sample(index, split, KO, task=task)


@pytest.mark.parametrize("task", SCENE_TASKS)
def test_korean_twins_share_scene_question_and_template(task):
    for english, korean in twins(task):
        assert korean.image.tobytes() == english.image.tobytes()
        assert korean.task == english.task and korean.targets["language"] == "ko"
        assert len(korean.turns) == len(english.turns)
        pairs = [(english.targets, korean.targets)]
        if task == CONVERSATION:
            pairs = list(zip(english.targets["turns"], korean.targets["turns"], strict=True))
            assert korean.targets["tasks"] == english.targets["tasks"]
        for en, ko in pairs:
            assert {k: ko.get(k) for k in STRUCTURE} == {k: en.get(k) for k in STRUCTURE}
        for en_turn, ko_turn in zip(english.turns, korean.turns, strict=True):
            turn_task = task_of(en_turn.user)
            assert task_of(ko_turn.user) == turn_task
            en_pool, ko_pool = INSTRUCTION_POOLS[turn_task], KOREAN_INSTRUCTION_POOLS[turn_task]
            # The same template position.
            assert template_index(ko_pool, ko_turn.user) == template_index(en_pool, en_turn.user)


def pattern(template: str) -> str:
    """A pool template as a regex: the slot is anything, a particle marker one of its forms."""
    parts = re.split(r"(\{[^{}]*\})", template)
    out = []
    for part in parts:
        if part == "{}":
            out.append("(.+)")
        elif part.startswith("{") and "/" in part:
            out.append("(?:" + "|".join(part[1:-1].split("/")) + ")")
        else:
            out.append(re.escape(part))
    return "".join(out)


def template_index(pool: tuple[str, ...], instruction: str) -> int:
    """The template an instruction was written from: the longest that matches ("[refer] {}"
    matches every refer instruction)."""
    matching = [i for i, t in enumerate(pool) if re.fullmatch(pattern(t), instruction)]
    return max(matching, key=lambda i: len(pool[i]))


def slot(template: str, instruction: str) -> str | None:
    match = re.fullmatch(pattern(template), instruction)
    return match.group(1) if match and "{}" in template else None


@pytest.mark.parametrize("task", ["refer", "identify", "vqa", "caption", "detection", "grounding"])
def test_korean_text_is_the_translation_of_the_english(task):
    for english, korean in twins(task):
        en, ko = english.turns[0], korean.turns[0]
        en_pool, ko_pool = INSTRUCTION_POOLS[task], KOREAN_INSTRUCTION_POOLS[task]
        index = template_index(en_pool, en.user)
        if task == "refer":
            en_slot = slot(en_pool[index], en.user)
            if en_slot is not None:
                en_slot = en_slot if en_slot.startswith("the ") else f"the {en_slot}"
                assert slot(ko_pool[index], ko.user) == expression(en_slot)
            assert ko.assistant == en.assistant  # the box
        elif task == "identify":
            assert ko.assistant == noun_phrase(en.assistant)
            assert slot(ko_pool[index], ko.user) == slot(en_pool[index], en.user)  # the box
        elif task == "vqa":
            assert korean.targets["question"] == vqa_question(english.targets["question"])
            assert ko.assistant == answer(en.assistant)
        elif task == "caption":
            assert ko.assistant == phrase(en.assistant)
        elif task == "detection":
            assert slot(ko_pool[0], ko.user) == phrase(slot(en_pool[0], en.user))
        else:  # grounding
            assert korean.targets["phrases"] == [
                (phrase(p), boxes) for p, boxes in english.targets["phrases"]
            ]
        if task in ("detection", "grounding"):
            size = english.image.size
            en_parsed, ko_parsed = (
                parse_grounding(en.assistant, *size),
                parse_grounding(ko.assistant, *size),
            )
            assert ko_parsed.boxes == en_parsed.boxes and ko_parsed.boxes
            en_phrases = [(phrase(p.phrase), p.boxes) for p in en_parsed.phrases]
            assert [(p.phrase, p.boxes) for p in ko_parsed.phrases] == en_phrases


def korean_texts(samples) -> list[str]:
    return [text for s in samples for turn in s.turns for text in (turn.user, turn.assistant)]


@pytest.fixture(scope="module")
def korean() -> list[str]:
    samples = [s for task in TASK_BUILDERS for _, s in twins(task, "train", 40)]
    samples += [make_sample(index, "test-wide", KO, task="vqa") for index in range(20)]
    return korean_texts(samples)


def test_korean_text_has_no_english_words_beyond_the_grammar(korean):
    grammar = re.compile(
        r"\[(?:" + "|".join(t[1:-1] for t in TASK_TOKENS) + r")\]|\{(?:<\d+>)+\}|</?p>|<delim>"
    )
    for text in korean:
        assert not re.search("[A-Za-z]", grammar.sub("", text)), text


# Nouns the world puts particles after, with whether they end in a final consonant.
NOUNS = {"원": True, "사각형": True, "삼각형": True, "도형": True, "물체": False, "개": False}
PARTICLES = (("이", "가"), ("을", "를"), ("은", "는"), ("과", "와"))


def test_korean_particles_agree_with_the_noun_before_them(korean):
    seen = Counter()
    for text in korean:
        for noun, consonant in NOUNS.items():
            for after_consonant, after_vowel in PARTICLES:
                right, wrong = (after_consonant, after_vowel)[:: 1 if consonant else -1]
                assert not re.search(f"{noun}{wrong}(?=[ ?.,]|$)", text), (noun, wrong, text)
                seen[right] += len(re.findall(f"{noun}{right}(?=[ ?.,]|$)", text))
    # The world's nouns choose both forms of 은/는 (원은 / 물체는); 이, 을 follow its shapes and
    # 와 its counted phrases (한 개와), which all end alike (the helper's test covers the rest).
    for form in ("이", "을", "은", "는", "와"):
        assert seen[form] > 0, (form, seen)


def test_korean_text_only_rows():
    rows = [make_sample(index, "train", KO, task=LANGUAGE) for index in range(200)]
    text = " ".join(f"{r.turns[0].user} {r.turns[0].assistant}" for r in rows)
    for color in COLOR.values():
        for shape in SHAPE.values():
            assert f"{color} {shape}" in text
    for row in rows:
        turn = row.turns[0]
        assert row.image is None and row.targets == {
            "kind": LANGUAGE, "answer": turn.assistant, "language": "ko"
        }  # fmt: skip
        # Every shape ends in a final consonant: 은 and 을.
        if m := re.fullmatch("(\\S+) (\\S+)은 무슨 색인가요\\?", turn.user):
            assert turn.assistant == COLOR_ANSWER[INVERSE_COLOR[m[1]]]
        elif m := re.fullmatch("(\\S+) (\\S+)은 어떤 모양인가요\\?", turn.user):
            assert turn.assistant == m[2]
        elif m := re.fullmatch("(\\S+ \\S+)을 다시 말해 주세요\\.", turn.user):
            assert turn.assistant == m[1]
        else:
            assert turn.user in KOREAN.language_lists
            assert re.fullmatch("[가-힣 ,]+ 개", turn.assistant), turn.assistant


INVERSE_COLOR = {word: color for color, word in COLOR.items()}


# --------------------------------------------------------------------------------------------------
# Mixed: each sample in one language, by its index
# --------------------------------------------------------------------------------------------------


def test_en_ko_mixes_both_deterministically_by_index():
    languages = Counter()
    for index in range(60):
        mixed = make_sample(index, "train", MIXED)
        again = make_sample(index, "train", MIXED)
        assert mixed.turns == again.turns
        language = mixed.targets["language"]
        languages[language] += 1
        alone = make_sample(index, "train", ShapesConfig(language=language))
        assert mixed.turns == alone.turns and mixed.image.tobytes() == alone.image.tobytes()
    assert languages["en"] > 15 and languages["ko"] > 15, languages
    dataset = ShapesDataset("train", 20, MIXED, task="vqa")
    assert [s.turns for s in dataset] == [
        s.turns for s in ShapesDataset("train", 20, MIXED, task="vqa")
    ]


def test_a_pack_is_in_one_language():
    single = {task: w for task, w in SHAPES_MIX.items() if task not in OWN_ROWS}
    languages = Counter()
    for index in range(12):
        pack = make_pack(index, "train", single, 4, MIXED)
        language = pack.targets["language"]
        languages[language] += 1
        assert {turn["language"] for turn in pack.targets["turns"]} == {language}
        alone = make_pack(index, "train", single, 4, ShapesConfig(language=language))
        assert pack.turns == alone.turns
    assert set(languages) == {"en", "ko"}
