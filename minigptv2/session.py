"""Multi-turn chat about one image that encodes the image once and never re-reads earlier turns.

Each turn is rendered in full (``prompts.render``), exactly as ``Assistant.chat`` with the same
history would render it, and compared with the ids whose keys and values are already in the KV
cache: the previous prompt and the answer tokens the model generated. Because the processor
tokenises every piece on its own, a new turn appends ids to the previous rendering, and usually
only the closing ``</s>`` and the new ``[INST] … [/INST]`` run through the model. Where the
re-rendered ids differ (an answer whose text tokenises differently from the ids that produced
it), the cache is cut back to the common prefix, so the model always reads exactly the ids a full
re-render gives and greedy answers equal ``Assistant.chat``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

from minigptv2.constants import IMAGE_TOKEN_ID
from minigptv2.errors import PromptError
from minigptv2.images import ImageSource, image_to_tensor, load_image
from minigptv2.prompts import Turn, render

if TYPE_CHECKING:
    from minigptv2.assistant import Answer, Assistant, GenerationConfig


class ChatSession:
    """A conversation with an ``Assistant`` about one image (or none); see the module docstring.

    ``history`` holds the finished turns. A streamed turn that the caller abandons is not added to
    it; the cache keeps what it read and the next turn reuses whatever still matches.
    """

    def __init__(self, assistant: Assistant, image: ImageSource | None = None) -> None:
        self.assistant = assistant
        self.image = None if image is None else load_image(image)
        self.history: list[Turn] = []
        self.answers: list[Answer] = []  # parsed answers of ``history``, turn by turn
        self._features: torch.Tensor | None = None  # encoded by the first turn that needs it
        self._cache = DynamicCache()
        self._cached_ids: list[int] = []  # the ids whose keys/values the cache holds
        self.reused_tokens = 0  # how many prompt ids the last turn took from the cache

    def ask(self, prompt: str, config: GenerationConfig | None = None) -> Answer:
        """Answer ``prompt`` after the earlier turns; the turn is added to ``history``."""
        steps = self._steps(prompt, config)
        generated = [int(ids[0]) for ids in steps]
        return self._finish(prompt, generated)

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        """Text deltas of the answer; the turn joins ``history`` when the stream is exhausted."""
        steps = self._steps(prompt, config)
        generated: list[int] = []

        def recorded() -> Iterator[torch.Tensor]:
            for ids in steps:
                generated.append(int(ids[0]))
                yield ids

        def deltas() -> Iterator[str]:
            try:
                yield from self.assistant._text_deltas(recorded())
                # _text_deltas stops reading at </s>; drain (no model call follows an </s>).
                generated.extend(int(ids[0]) for ids in steps)
                self._finish(prompt, generated)
            finally:
                steps.close()

        return deltas()

    def reset(self) -> None:
        """Forget the conversation (the image stays encoded)."""
        self.history = []
        self.answers = []
        self._cache = DynamicCache()
        self._cached_ids = []

    # -- one turn ------------------------------------------------------------------------------

    def _steps(self, prompt: str, config: GenerationConfig | None) -> Iterator[torch.Tensor]:
        from minigptv2.assistant import GenerationConfig

        config = config or GenerationConfig()
        assistant = self.assistant
        turns = [*self.history, Turn(prompt)]
        pieces = render(turns, image=self.image is not None, style=assistant.style)
        ids = assistant.processor.encode(pieces).input_ids  # checks the context limits
        if len(ids) > assistant.processor.max_positions:
            raise PromptError(
                f"the conversation is {len(ids)} tokens, over the language model's "
                f"{assistant.processor.max_positions} positions; start a new session (/reset)"
            )
        reused = self._reuse_prefix(ids)
        new = torch.tensor([ids[reused:]])
        has_image = bool((new == IMAGE_TOKEN_ID).any())
        steps = assistant.model.generate_steps(
            new,
            torch.ones((1, len(ids)), dtype=torch.long),
            image_features=self._image_features() if has_image else None,
            max_new_tokens=config.max_new_tokens,
            eos_token_id=assistant.processor.tokenizer.eos_id,
            pad_token_id=assistant.processor.tokenizer.pad_id,
            sampling=config.sampling(),
            cache=self._cache,
        )
        return self._tracked(steps, ids)

    def _image_features(self) -> torch.Tensor:
        if self._features is None:
            pixels = image_to_tensor(self.image, self.assistant.processor.image_size)[None]
            with torch.inference_mode():
                self._features = self.assistant.model.encode_images(pixels)  # (1, I, hidden)
        return self._features

    def _reuse_prefix(self, ids: list[int]) -> int:
        """Cut the cache to the longest prefix it shares with ``ids``; returns its length."""
        common = 0
        for cached, wanted in zip(self._cached_ids, ids, strict=False):
            if cached != wanted:
                break
            common += 1
        common = min(common, len(ids) - 1)  # the last prompt id must run to give logits
        surplus = self._cache.get_seq_length() - common
        if surplus > 0:
            with torch.inference_mode():
                self._cache.crop(-surplus)  # transformers 5: a negative count of tokens to drop
        self._cached_ids = ids[:common]
        self.reused_tokens = common
        return common

    def _tracked(self, steps: Iterator[torch.Tensor], ids: list[int]) -> Iterator[torch.Tensor]:
        """Keep ``_cached_ids`` equal to what the cache holds, however the turn ends."""
        generated: list[int] = []
        try:
            for step in steps:
                # At a yield the cache holds the prompt and every generated id but this one.
                self._cached_ids = ids + generated
                generated.append(int(step[0]))
                yield step
        except GeneratorExit:
            raise
        except BaseException:
            # Interrupted inside a model call: some layers may hold more than others. Start over.
            self._cache = DynamicCache()
            self._cached_ids = []
            raise
        finally:
            steps.close()

    def _finish(self, prompt: str, generated: list[int]) -> Answer:
        answer = self.assistant._answer(torch.tensor(generated), self.image)
        self.history.append(Turn(prompt, answer.text))
        self.answers.append(answer)
        return answer
