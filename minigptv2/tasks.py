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
