"""The words the Shapes world writes, one ``Lexicon`` per language (English, Korean).

A project addition, not part of MiniGPT-v2 (arXiv 2310.09478): the paper's model speaks English;
this lets the small Shapes model be trained and benchmarked in another language with nothing else
changed. ``minigptv2.data.shapes`` decides *what* a sample says (which object, which relation,
which template of the pool by index); a ``Lexicon`` decides only *how it is worded*. A language is
therefore data: word tables, sentence patterns and instruction pools (``minigptv2.tasks``), read by
one function, ``compose``. Task tokens (``[vqa]`` …), the box grammar ``{<x1><y1><x2><y2>}``,
``<p>phrase</p>`` and ``<delim>`` are the same in every language.

Patterns are ``str.format``-like: ``{}`` and ``{name}`` are slots; a slot whose text holds a
``/`` or starts with ``(`` is a Korean particle marker (``{이/가}``, ``{을/를}``, ``{은/는}``,
``{과/와}``, ``{(으)로}``), replaced by the form that fits the text before it (``particle``).
English patterns hold no markers, so ``compose`` is ``str.format`` for them and the English text
is that of before this module, byte for byte.

Every pool and every list of a lexicon has as many entries as English's: a sample draws a template
by index from the same random stream, so the Korean sample ``i`` of a split is the translation of
the English sample ``i`` (same scene, same question, same template position), and per-language
benchmark scores are comparable item by item.

``ShapesConfig.language`` (``"en"``, ``"ko"`` or ``"en+ko"``) names the language(s) of a world;
``sample_lexicon`` is the one place that turns it into a lexicon per sample.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from minigptv2.errors import ConfigError
from minigptv2.tasks import INSTRUCTION_POOLS, KOREAN_INSTRUCTION_POOLS

# --------------------------------------------------------------------------------------------------
# Korean particles
# --------------------------------------------------------------------------------------------------

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3  # the 11,172 precomposed syllables
_FINALS = 28  # final consonants per (initial, vowel), 0 = none
_RIEUL = 8  # index of ㄹ among the finals


def final_consonant(text: str) -> int:
    """The final consonant (batchim) index of the last Hangul syllable in ``text``: 0 for none,
    8 for ㄹ. What follows that syllable is silent for a particle: a box, ``</p>``, punctuation
    (``<p>빨간 원</p> {<1><2><3><4>}`` ends in 원). Digits and Latin letters are not read."""
    for char in reversed(text):
        code = ord(char)
        if _HANGUL_FIRST <= code <= _HANGUL_LAST:
            return (code - _HANGUL_FIRST) % _FINALS
    raise ValueError(f"no Hangul syllable in {text!r} to choose a particle after")


def particle(text: str, forms: str) -> str:
    """The particle that follows ``text``: ``forms`` is ``"이/가"``, ``"을/를"``, ``"은/는"``,
    ``"과/와"`` (the form after a final consonant first) or ``"(으)로"`` (로 after a vowel or ㄹ).

    ``particle("원", "이/가") == "이"``, ``particle("물체", "이/가") == "가"``,
    ``particle("서울", "(으)로") == "로"``.
    """
    final = final_consonant(text)
    if forms == "(으)로":
        return "로" if final in (0, _RIEUL) else "으로"
    after_consonant, sep, after_vowel = forms.partition("/")
    if not sep or not after_consonant or not after_vowel:
        raise ValueError(f"particle forms must be 'A/B' or '(으)로', got {forms!r}")
    return after_consonant if final else after_vowel


_SLOT = re.compile(r"\{([^{}]*)\}")


def compose(pattern: str, *args: str, **kwargs: str) -> str:
    """Fill ``pattern``'s slots left to right (``{}`` takes the next of ``args``, ``{name}``
    ``kwargs[name]``) and its particle markers by what precedes them (module docstring)."""
    out: list[str] = []
    position = 0
    values = iter(args)
    for match in _SLOT.finditer(pattern):
        out.append(pattern[position : match.start()])
        name = match.group(1)
        if "/" in name or name.startswith("("):
            out.append(particle("".join(out), name))
        elif name:
            out.append(kwargs[name])
        else:
            out.append(next(values))
        position = match.end()
    out.append(pattern[position:])
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# Lexicons
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lexicon:
    """Every word and sentence pattern of the Shapes world in one language.

    Word tables are keyed by the world's (English) names, ``PALETTE`` colours, ``SHAPES``, the
    ``DIRECTIONS`` and ``RELATIONS`` keys of ``minigptv2.data.shapes``. ``patterns`` holds the
    sentences, with these slots: ``color``, ``shape``, ``name`` (an object's name, ``patterns
    ["name"]``), ``noun``, ``number``, ``expression``, ``direction``, ``relation``,
    ``landmark``, ``subject``, ``box``.
    """

    code: str
    colors: Mapping[str, str]  # a colour before a noun: "red" / "빨간"
    color_answers: Mapping[str, str]  # a colour as an answer: "red" / "빨간색"
    shapes: Mapping[str, str]
    numbers: tuple[str, ...]  # caption counts by number: "two" / "두 개" (index 0 unused)
    count_answers: tuple[str, ...]  # VQA's answer to "how many": "2" / "두 개"
    yes: str
    no: str
    directions: Mapping[str, str]
    relations: Mapping[str, str]
    patterns: Mapping[str, str]
    pools: Mapping[str, tuple[str, ...]]  # task -> instruction pool (``minigptv2.tasks``)
    language_lists: tuple[str, ...]  # text-only rows: requests for a list of coloured shapes
    # text-only rows: (question about one object's name, what it asks: color | shape | name)
    language_questions: tuple[tuple[str, str], ...]
    # A pool's "the {}" already holds the article an expression starts with ("where can I locate
    # the {} ?"); the expression then drops its own. Empty: the language has no article.
    article: str = ""

    def name(self, color: str, shape: str) -> str:
        """An object's name, ``red circle`` / ``빨간 원``: what identify answers."""
        return compose(self.patterns["name"], color=self.colors[color], shape=self.shapes[shape])

    def counted(self, name: str, count: int) -> str:
        """``a red circle``, ``two red circles`` / ``빨간 원 한 개``, ``빨간 원 두 개``."""
        pattern = self.patterns["one" if count == 1 else "many"]
        return compose(pattern, name=name, number=self.numbers[count])

    def join(self, parts: list[str]) -> str:
        """Noun phrases joined: ``a``, ``a and b``, ``a, b and c`` / ``a와 b``, ``a, b와 c``."""
        if len(parts) <= 1:
            return "".join(parts)
        head = self.patterns["list"].join(parts[:-1])
        return compose(self.patterns["and"], head, parts[-1])

    def fill(self, template: str, value: str) -> str:
        """An instruction: ``template`` of a pool with its slot filled by ``value``."""
        if self.article and f"{self.article}{{}}" in template:
            value = value.removeprefix(self.article)
        return compose(template, value)


_ENGLISH_WORDS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

ENGLISH = Lexicon(
    code="en",
    colors={color: color for color in ("red", "green", "blue", "yellow")},
    color_answers={color: color for color in ("red", "green", "blue", "yellow")},
    shapes={shape: shape for shape in ("circle", "square", "triangle")},
    numbers=_ENGLISH_WORDS,
    # VQAv2's normalisation turns number words into digits; answers are digits to begin with.
    count_answers=tuple(str(count) for count in range(len(_ENGLISH_WORDS))),
    yes="yes",
    no="no",
    directions={w: w for w in ("on the left", "on the right", "at the top", "at the bottom")},
    relations={w: w for w in ("to the left of", "to the right of", "above", "below")},
    patterns={
        "name": "{color} {shape}",
        "the": "the {noun}",
        "colored_object": "{color} object",
        "colored_shape": "{color} shape",
        "shape": "shape",
        "positioned": "{expression} {direction}",
        "related": "{expression} {relation} {landmark}",
        "one": "a {name}",
        "many": "{number} {name}s",
        "list": ", ",
        "and": "{} and {}",
        "every": "{noun}s",  # detection: "circles", "red shapes", "red circles"
        "count_all": "how many shapes are there?",
        "count_color": "how many {color} shapes are there?",
        "count_shape": "how many {shape}s are there?",
        "count_color_shape": "how many {name}s are there?",
        "color_of": "what color is {expression}?",
        "shape_of": "what shape is {expression}?",
        "color_at_box": "what color is the object at {box}?",
        "exists": "is there a {name}?",
        "relation": "is {subject} {relation} {landmark}?",
    },
    pools=INSTRUCTION_POOLS,
    language_lists=(
        "List some coloured shapes.",
        "Name a few shapes and their colours.",
        "Write a phrase about coloured shapes.",
    ),
    language_questions=(
        ("what colour is a {}?", "color"),
        ("what shape is a {}?", "shape"),
        ("name the {} again.", "name"),
    ),
    article="the ",
)

_KOREAN_NUMERALS = ("한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열")
_KOREAN_COUNTS = tuple(f"{numeral} 개" for numeral in _KOREAN_NUMERALS)  # 1-10: 한 개 … 열 개

# Colours before a noun take the adnominal form (빨간 원), except 초록, a noun that modifies as
# it is; as an answer, the colour noun (빨간색). Counts take the native numeral and the counter 개
# (두 개); no shape at all is "없어요" (there are none), as a person would answer. Positions and
# relations put the place before the object, as Korean does: 파란 사각형 왼쪽에 있는 초록 삼각형.
KOREAN = Lexicon(
    code="ko",
    colors={"red": "빨간", "green": "초록", "blue": "파란", "yellow": "노란"},
    color_answers={"red": "빨간색", "green": "초록색", "blue": "파란색", "yellow": "노란색"},
    shapes={"circle": "원", "square": "사각형", "triangle": "삼각형"},
    numbers=("", *_KOREAN_COUNTS),
    count_answers=("없어요", *_KOREAN_COUNTS),
    yes="네",
    no="아니요",
    directions={
        "on the left": "왼쪽",
        "on the right": "오른쪽",
        "at the top": "위쪽",
        "at the bottom": "아래쪽",
    },
    relations={
        "to the left of": "왼쪽",
        "to the right of": "오른쪽",
        "above": "위",
        "below": "아래",
    },
    patterns={
        "name": "{color} {shape}",
        "the": "{noun}",
        "colored_object": "{color} 물체",
        "colored_shape": "{color} 도형",
        "shape": "도형",
        "positioned": "{direction}에 있는 {expression}",
        "related": "{landmark} {relation}에 있는 {expression}",
        "one": "{name} {number}",
        "many": "{name} {number}",
        "list": ", ",
        "and": "{}{과/와} {}",
        "every": "모든 {noun}",
        "count_all": "도형은 모두 몇 개 있나요?",
        "count_color": "{color} 도형은 몇 개 있나요?",
        "count_shape": "{shape}{이/가} 몇 개 있나요?",
        "count_color_shape": "{name}{이/가} 몇 개 있나요?",
        "color_of": "{expression}{은/는} 무슨 색인가요?",
        "shape_of": "{expression}{은/는} 어떤 모양인가요?",
        "color_at_box": "{box}에 있는 물체는 무슨 색인가요?",
        "exists": "{name}{이/가} 있나요?",
        "relation": "{subject}{이/가} {landmark} {relation}에 있나요?",
    },
    pools=KOREAN_INSTRUCTION_POOLS,
    language_lists=(
        "색깔 있는 도형을 몇 가지 나열해 주세요.",
        "도형 몇 가지와 그 색깔을 말해 주세요.",
        "색깔 있는 도형에 관한 구절을 하나 써 주세요.",
    ),
    language_questions=(
        ("{}{은/는} 무슨 색인가요?", "color"),
        ("{}{은/는} 어떤 모양인가요?", "shape"),
        ("{}{을/를} 다시 말해 주세요.", "name"),
    ),
)

LEXICONS: dict[str, Lexicon] = {"en": ENGLISH, "ko": KOREAN}
MIXED = "+"  # "en+ko": each sample draws one of the languages


def languages(spec: str) -> tuple[str, ...]:
    """The languages of a ``ShapesConfig.language`` value: ``"en+ko"`` -> ``("en", "ko")``."""
    names = tuple(spec.split(MIXED)) if isinstance(spec, str) else ()
    if not names or len(set(names)) != len(names) or not set(names) <= set(LEXICONS):
        raise ConfigError(
            f"unknown Shapes language {spec!r}; use one of {', '.join(LEXICONS)} or several "
            f"joined by {MIXED!r}, e.g. {MIXED.join(LEXICONS)!r}"
        )
    return names


def sample_lexicon(spec: str, stream: str) -> Lexicon:
    """The lexicon of the sample whose random stream is ``stream`` (``"train:17"``): the one
    language of ``spec``, or for several an even draw from a stream of its own, so the language
    is a function of the index and the sample's own draws (scene, question) do not change."""
    names = languages(spec)
    if len(names) == 1:
        return LEXICONS[names[0]]
    return LEXICONS[random.Random(f"{stream}:language").choice(names)]
