"""MiniGPT-v2's six task identifiers and the instruction pools of each task (spec §3.1, §4.2).

A task identifier is plain text at the start of the user's instruction (``[refer] where is the
dog``); it is not a new vocabulary entry. The pools are the reference training templates, byte for
byte: some end in a space on purpose, and that space reaches the model.
"""

from __future__ import annotations

import re

from minigptv2.errors import UnknownTaskError

TASKS: tuple[str, ...] = ("vqa", "caption", "grounding", "refer", "detection", "identify")
TASK_TOKENS: tuple[str, ...] = tuple(f"[{task}]" for task in TASKS)

# A bracketed word at the very start of an instruction is read as a task identifier.
_LEADING_TAG = re.compile(r"^\s*\[([A-Za-z_]+)\]")

# Referring-expression comprehension: text -> box. ``{}`` is the (processed) expression.
REFER_TEMPLATES: tuple[str, ...] = (
    "[refer] {}",
    "[refer] give me the location of {}",
    "[refer] where is {} ?",
    "[refer] from this image, tell me the location of {}",
    "[refer] the location of {} is",
    "[refer] could you tell me the location for {} ?",
    "[refer] where can I locate the {} ?",
)

# Referring-expression generation: box -> text. ``{}`` is a box string.
IDENTIFY_TEMPLATES: tuple[str, ...] = (
    "[identify] {}",
    "[identify] what object is in this location {}",
    "[identify] identify the object present at this location {}",
    "[identify] what is it in {}",
    "[identify] describe this object in {}",
    "[identify] this {} is",
    "[identify] the object in {} is",
)

GROUNDING_TEMPLATES: tuple[str, ...] = (
    "[grounding] please describe this image in details",
    "[grounding] describe this image as detailed as possible",
    "[grounding] summarize this image in details",
    "[grounding] give a thorough description of what you see in this image",
)

# ``{}`` is a caption (caption -> phrases with boxes) or a phrase (phrase -> boxes).
DETECTION_TEMPLATES: tuple[str, ...] = ("[detection] {}",)

VQA_TEMPLATES: tuple[str, ...] = (
    "[vqa] {}",
    "[vqa] Based on the image, respond to this question with a short answer: {}",
)

# The reference stores these without the identifier and prefixes "[caption] " when it builds the
# instruction; they are kept with the prefix here so every pool reads the same way.
CAPTION_TEMPLATES: tuple[str, ...] = tuple(
    "[caption] " + text
    for text in (
        "Briefly describe this image.",
        "Provide a concise depiction of this image.",
        "Present a short description of this image.",
        "Summarize this image in a few words.",
        "A short image caption:",
        "A short image description:",
        "A photo of ",
        "An image that shows ",
        "Write a short description for the image. ",
        "Write a description for the photo.",
        "Provide a description of what is presented in the photo.",
        "Briefly describe the content of the image.",
        "Can you briefly explain what you see in the image?",
        "Could you use a few words to describe what you perceive in the photo?",
        "Please provide a short depiction of the picture.",
        "Using language, provide a short account of the image.",
        "Use a few words to illustrate what is happening in the picture.",
    )
)

INSTRUCTION_POOLS: dict[str, tuple[str, ...]] = {
    "vqa": VQA_TEMPLATES,
    "caption": CAPTION_TEMPLATES,
    "grounding": GROUNDING_TEMPLATES,
    "refer": REFER_TEMPLATES,
    "detection": DETECTION_TEMPLATES,
    "identify": IDENTIFY_TEMPLATES,
}


def task_of(instruction: str) -> str | None:
    """Return the task named by the instruction's leading ``[task]`` tag, or None if it has none.

    Raises UnknownTaskError for a leading tag that is not one of the six, because a typo such as
    ``[grounded]`` would otherwise reach the model as plain text and silently change its behaviour.
    """
    match = _LEADING_TAG.match(instruction)
    if match is None:
        return None
    name = match.group(1)
    if name not in TASKS:
        raise UnknownTaskError(
            f"unknown task identifier '[{name}]' at the start of {instruction[:60]!r}; "
            f"use one of {', '.join(TASK_TOKENS)}, or drop the tag for a free-form question"
        )
    return name


def with_task(task: str, text: str) -> str:
    """Prefix ``text`` with the task's identifier: ``with_task("vqa", "why?") == "[vqa] why?"``."""
    if task not in TASKS:
        raise UnknownTaskError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return f"[{task}] {text}"


# Korean instruction pools: a project addition for the Shapes world (``minigptv2.data
# .shapes_languages``), not the reference's. One translation per reference template, in the same
# order, so a Korean sample draws the template its English twin draws. ``{이/가}``-style markers
# after the slot are particles chosen by the filled-in word (``shapes_languages.compose``); after a
# box only particles that never change (에, 의) are used.
KOREAN_INSTRUCTION_POOLS: dict[str, tuple[str, ...]] = {
    "vqa": (
        "[vqa] {}",
        "[vqa] 이미지를 보고 다음 질문에 짧게 답해 주세요: {}",
    ),
    "caption": tuple(
        "[caption] " + text
        for text in (
            "이 이미지를 간단히 설명해 주세요.",
            "이 이미지를 간결하게 묘사해 주세요.",
            "이 이미지에 대한 짧은 설명을 제시해 주세요.",
            "이 이미지를 몇 단어로 요약해 주세요.",
            "짧은 이미지 캡션:",
            "짧은 이미지 설명:",
            "이 사진에는 ",
            "이 이미지가 보여 주는 것은 ",
            "이미지에 대한 짧은 설명을 써 주세요.",
            "사진에 대한 설명을 써 주세요.",
            "사진에 나타난 것을 설명해 주세요.",
            "이미지의 내용을 간단히 설명해 주세요.",
            "이미지에서 보이는 것을 간단히 설명해 줄 수 있나요?",
            "사진에서 보이는 것을 몇 단어로 묘사해 줄 수 있나요?",
            "그림을 짧게 묘사해 주세요.",
            "이미지를 말로 짧게 설명해 주세요.",
            "그림에서 무엇이 보이는지 몇 단어로 표현해 주세요.",
        )
    ),
    "grounding": (
        "[grounding] 이 이미지를 자세히 설명해 주세요",
        "[grounding] 이 이미지를 최대한 자세하게 묘사해 주세요",
        "[grounding] 이 이미지를 자세히 요약해 주세요",
        "[grounding] 이 이미지에서 보이는 것을 빠짐없이 설명해 주세요",
    ),
    "refer": (
        "[refer] {}",
        "[refer] {}의 위치를 알려 주세요",
        "[refer] {}{은/는} 어디에 있나요?",
        "[refer] 이 이미지에서 {}의 위치를 알려 주세요",
        "[refer] {}의 위치는",
        "[refer] {}{이/가} 어디에 있는지 알려 주실 수 있나요?",
        "[refer] {}{을/를} 어디에서 찾을 수 있나요?",
    ),
    "detection": ("[detection] {}",),
    "identify": (
        "[identify] {}",
        "[identify] 이 위치 {}에 있는 물체는 무엇인가요?",
        "[identify] 위치 {}에 있는 물체를 식별해 주세요",
        "[identify] {} 안에 있는 것은 무엇인가요?",
        "[identify] {}에 있는 이 물체를 설명해 주세요",
        "[identify] 이 {}에 있는 것은",
        "[identify] {}에 있는 물체는",
    ),
}
