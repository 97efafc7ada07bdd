"""The one generation API that the chat CLI, the demo, the HTTP server and evaluation share.

``Assistant`` pairs a ``MiniGPTv2`` with its ``Processor``: images and prompts in, ``Answer``s out,
each with its text and the boxes parsed from it in pixels of the original image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from minigptv2.boxes import Grounding, parse_grounding
from minigptv2.config import SHIPPED_MODEL as SHIPPED_MODEL  # re-exported for callers
from minigptv2.config import resolve_model
from minigptv2.constants import RELEASED_IMAGE_SIZE
from minigptv2.errors import CheckpointError, ConfigError, PromptError
from minigptv2.images import ImageSource, load_image
from minigptv2.model import MiniGPTv2
from minigptv2.model.decoding import Sampling
from minigptv2.model.quantize import quantize_int4, quantize_int8
from minigptv2.processor import Processor
from minigptv2.prompts import EVAL_STYLE, ChatFormat, Turn, chat_format
from minigptv2.streaming import TextDeltas

if TYPE_CHECKING:
    from minigptv2.session import ChatSession

# Weight-only quantizations of the language model, applied after loading.
QUANTIZATIONS = {"int8": quantize_int8, "int4": quantize_int4}


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

    def sampling(self) -> Sampling:
        return Sampling(
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
        )


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
    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        *,
        eva: str | Path | None = None,
        llama: str | Path | None = None,
        checkpoint: str | Path | None = None,
        strict: bool = True,
        dtype: str | None = None,
        image_size: int | None = None,
        vision_heads: int | None = None,
        quantize: str | None = None,
    ) -> Assistant:
        """Our saved folder, the three released files, or (with no argument) the shipped model.

        ``model`` is a folder or the name of a model shipped with the package (``"shapes"``,
        ``"shapes-ko"``; ``config.SHIPPED_MODELS``): an existing folder wins over a name
        (``config.resolve_model``).

        ``image_size`` (default 448) and ``vision_heads`` build the model from the released files
        as ``load_released`` (and ``minigptv2 convert``) does; a saved folder has its own in its
        ``config.json``.

        ``quantize="int8"`` stores the language model's linear weights as int8 (weight-only, per
        output channel), ``quantize="int4"`` as 4-bit integers with a scale and a zero per group
        of 128 input channels (see ``model/quantize.py``): faster CPU decoding and a half or a
        quarter of bf16's memory, for a small accuracy cost (the README gives it).

        Generation uses the prompt style named in the model's config (``prompt_style``): the
        reference evaluation style for released weights, the training style for the Shapes model,
        which never saw the evaluation quirks; or the language model's own chat template
        (``chat_format: native``, ``prompts.chat_format``).
        """
        from minigptv2.checkpoints import load_pretrained, load_released

        if eva is not None or llama is not None:
            if eva is None or llama is None:
                raise CheckpointError("pass both --eva and --llama (and usually --checkpoint)")
            network, tokenizer = load_released(
                eva,
                llama,
                checkpoint,
                strict=strict,
                dtype=dtype or "float32",
                image_size=image_size or RELEASED_IMAGE_SIZE,
                vision_heads=vision_heads,
            )
        else:
            if checkpoint is not None:
                raise CheckpointError("--checkpoint needs --eva and --llama (or use convert)")
            if image_size is not None or vision_heads is not None:
                # A folder's sizes are fixed by its weights; silently ignoring them would answer
                # at a resolution the user did not ask for.
                raise CheckpointError(
                    "--image-size and --vision-heads apply to the released files (--eva --llama);"
                    " a saved folder keeps those of its config.json (make another one with"
                    " `minigptv2 convert --image-size N`)"
                )
            network, tokenizer = load_pretrained(resolve_model(model), strict=strict, dtype=dtype)
        if quantize is not None:
            if quantize not in QUANTIZATIONS:
                raise ConfigError(
                    f"unknown quantization {quantize!r}; choose one of {sorted(QUANTIZATIONS)} "
                    "or none"
                )
            QUANTIZATIONS[quantize](network.language_model)
        style = chat_format(network.config, tokenizer, training=False)
        return cls(network, Processor(tokenizer, network.config), style=style)

    def __init__(
        self, model: MiniGPTv2, processor: Processor, *, style: ChatFormat = EVAL_STYLE
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

    def session(self, image: ImageSource | None = None) -> ChatSession:
        """A multi-turn chat about ``image`` that encodes it once and reuses the KV cache."""
        from minigptv2.session import ChatSession

        return ChatSession(self, image)

    def stream(
        self,
        image: ImageSource | None,
        prompt: str | Sequence[Turn],
        config: GenerationConfig = GenerationConfig(),
    ) -> Iterator[str]:
        """Text deltas of the answer as tokens are generated; joined, they equal ``chat``'s text.

        Bad input raises here, before any text; generation then runs as the caller iterates, one
        token per step, and stops when the caller stops (``close()`` or dropping the iterator).
        """
        loaded = None if image is None else load_image(image)
        batch = self.processor.generation_batch([prompt], [loaded], style=self.style)
        return self._text_deltas(self.stream_ids(batch, config))

    def stream_ids(
        self, batch: dict[str, torch.Tensor], config: GenerationConfig = GenerationConfig()
    ) -> Iterator[torch.Tensor]:
        """The (B,) ids of each step for a ``Processor.generation_batch``; for benchmarks.

        The first ``next()`` encodes the images and reads the prompts (time to first token).
        """
        return self.model.generate_steps(
            **batch,
            max_new_tokens=config.max_new_tokens,
            eos_token_id=self.processor.tokenizer.eos_id,
            pad_token_id=self.processor.tokenizer.pad_id,
            sampling=config.sampling(),
        )

    def _text_deltas(self, steps: Iterator[torch.Tensor]) -> Iterator[str]:
        deltas = TextDeltas(self.processor.tokenizer.decode, self.processor.tokenizer.eos_id)
        try:
            for ids in steps:
                delta = deltas.push(int(ids[0]))
                if delta:
                    yield delta
                if deltas.done:
                    break
            rest = deltas.finish()
            if rest:
                yield rest
        finally:
            steps.close()  # release the KV cache now, also when the consumer stops early

    def _answer(self, ids: torch.Tensor, image: Any) -> Answer:
        text = self.processor.decode(ids)
        if image is None:
            return Answer(text, Grounding(text, ()))
        return Answer(text, parse_grounding(text, *image.size))
