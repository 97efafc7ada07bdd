"""The one sample format every dataset reader emits.

A reader turns its source files (RefCOCO pickles, Flickr30k JSON, LLaVA conversations, the
synthetic Shapes world, a user's JSONL) into ``Sample``s; the collator and the processor only ever
see this type. A single-task sample is one ``Turn``; a conversation is several, and the image slot
goes into the first user message when the conversation is rendered (``minigptv2.prompts.render``),
so turn texts never contain it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from minigptv2.errors import PromptError, UnknownTaskError
from minigptv2.prompts import Turn
from minigptv2.tasks import TASKS


@dataclass(frozen=True)
class Sample:
    """An image (or None for text-only data) and a fully answered conversation.

    ``task`` is the task of a single-task sample (one of ``minigptv2.tasks.TASKS``) and None for
    free-form or mixed-task conversations. ``source`` names the dataset (``"shapes"``,
    ``"refcoco"``, ...). ``targets`` holds evaluation ground truth that is not in the text, such as
    boxes in pixels of the original image, the exact answer, or object counts; its keys are
    documented by the reader that fills it, and training ignores it.

    ``packed`` marks turns that are separate single-turn questions about the one image rather than
    a conversation: training puts them in one row that holds the image once, and each question
    sees the image and itself only (``Processor.encode_packed``), exactly as if it were alone.
    """

    image: Image.Image | None
    turns: tuple[Turn, ...]
    task: str | None
    source: str
    targets: dict[str, Any] = field(default_factory=dict)
    packed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "turns", tuple(self.turns))
        if not self.turns:
            raise PromptError(f"a {self.source!r} sample needs at least one turn; got none")
        for number, turn in enumerate(self.turns, start=1):
            if turn.assistant is None:
                raise PromptError(
                    f"turn {number} of a {self.source!r} sample has no answer; training samples "
                    "must answer every turn (leave the answer out only when prompting a model)"
                )
        if self.packed and self.image is None:
            raise PromptError(
                f"a packed {self.source!r} sample shares one image between its questions; "
                "it needs an image"
            )
        if self.task is not None and self.task not in TASKS:
            raise UnknownTaskError(
                f"unknown task {self.task!r} for a {self.source!r} sample; use one of "
                f"{', '.join(TASKS)}, or None for a free-form or multi-task conversation"
            )
