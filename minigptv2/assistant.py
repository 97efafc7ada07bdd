"""The one generation API that the chat CLI, the demo, the HTTP server and evaluation share.

``Assistant`` pairs a ``MiniGPTv2`` with its ``Processor``: images and prompts in, ``Answer``s out,
each with its text and the boxes parsed from it in pixels of the original image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from minigptv2.boxes import Grounding, parse_grounding
from minigptv2.errors import PromptError
from minigptv2.images import ImageSource, load_image
from minigptv2.model import MiniGPTv2
from minigptv2.processor import Processor
from minigptv2.prompts import EVAL_STYLE, PromptStyle, Turn


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. Defaults are greedy, as in the reference evaluation (spec §1.14)."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 0.9
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise PromptError(f"temperature must be positive when sampling, got {self.temperature}")

    def kwargs(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            settings.update(temperature=self.temperature, top_p=self.top_p)
        return settings


# The demo's sampling settings (spec §7): temperature 0.6, top-p 0.9, repetition penalty 1.05.
DEMO_SAMPLING = GenerationConfig(
    max_new_tokens=500, do_sample=True, temperature=0.6, top_p=0.9, repetition_penalty=1.05
)


@dataclass(frozen=True)
class Answer:
    text: str
    grounding: Grounding = field(default_factory=lambda: Grounding("", ()))

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "grounding": self.grounding.to_json()}


class Assistant:
    def __init__(
        self, model: MiniGPTv2, processor: Processor, *, style: PromptStyle = EVAL_STYLE
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.style = style

    def generate(
        self,
        images: Sequence[ImageSource | None],
        prompts: Sequence[str | Sequence[Turn]],
        config: GenerationConfig = GenerationConfig(),
    ) -> list[Answer]:
        """One answer per (image, prompt); a prompt is an instruction or turns ending open."""
        loaded = [None if image is None else load_image(image) for image in images]
        batch = self.processor.generation_batch(prompts, loaded, style=self.style)
        ids = self.model.generate(
            **batch,
            eos_token_id=self.processor.tokenizer.eos_id,
            pad_token_id=self.processor.tokenizer.pad_id,
            **config.kwargs(),
        )
        return [self._answer(row, image) for row, image in zip(ids, loaded, strict=True)]

    def chat(
        self,
        image: ImageSource | None,
        prompt: str,
        history: Sequence[Turn] = (),
        config: GenerationConfig = GenerationConfig(),
    ) -> Answer:
        """Answer ``prompt`` about ``image`` after the earlier, answered ``history`` turns."""
        return self.generate([image], [[*history, Turn(prompt)]], config)[0]

    def _answer(self, ids: torch.Tensor, image: Any) -> Answer:
        text = self.processor.decode(ids)
        if image is None:
            return Answer(text, Grounding(text, ()))
        return Answer(text, parse_grounding(text, *image.size))
