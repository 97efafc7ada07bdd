"""``MiniGPTv2Processor``: our ``Processor`` and chat template behind transformers' processor API.

* ``processor(images=…, text=…)`` takes instructions (``"[vqa] how many shapes?"``), renders them
  with the model's prompt style exactly as ``Assistant`` does, and returns the left-padded
  ``input_ids``, ``attention_mask`` and ``pixel_values`` of ``Processor.generation_batch``. Text
  that is already a rendered conversation (from ``apply_chat_template(..., tokenize=False)``) is
  split back into its pieces (``prompts.split_rendered``) and gives the same ids.
* ``apply_chat_template`` reads messages in the form transformers' VLMs use — ``role`` user or
  assistant, ``content`` a string or ``{"type": "image"}`` and ``{"type": "text", "text": …}``
  parts — and renders them with ``prompts.render``; the template is that code, not a Jinja copy
  of it. MiniGPT-v2 reads one image per conversation, placed before the first user message's text
  whatever its position among the parts, and has no system prompt.
* ``batch_decode`` / ``post_process_image_text_to_text`` turn generated ids into answers (cut at
  ``</s>``, specials dropped, stripped: ``Processor.decode``), and ``post_process_grounding``
  parses answers into phrases and pixel boxes with ``boxes.parse_grounding`` — in the spirit of
  Kosmos-2's and Florence-2's post-processors.

Images in messages may be PIL images, paths or bytes (keys ``image``, ``path`` or ``url``); remote
URLs are refused, never fetched.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from minigptv2.boxes import parse_grounding
from minigptv2.errors import ImageError, PromptError
from minigptv2.images import ImageSource, load_image
from minigptv2.processor import Processor
from minigptv2.prompts import INST_CLOSE, STYLES, PromptStyle, Turn, render, split_rendered, to_text
from minigptv2.tokenizer import TOKENIZER_FILE, Tokenizer

# Loading arguments that do not apply to a local folder of ours (hub, dtype and device ones).
_IGNORED_LOADING = {
    "_from_auto",
    "_from_pipeline",
    "cache_dir",
    "code_revision",
    "device_map",
    "dtype",
    "force_download",
    "local_files_only",
    "proxies",
    "revision",
    "token",
    "torch_dtype",
    "trust_remote_code",
}


class TokenizerView:
    """The tokenizer attributes transformers' pipelines read, over our SentencePiece tokenizer
    (``processor.tokenizer``)."""

    padding_side = "left"  # generation prompts are left-padded (processor.py)

    def __init__(self, tokenizer: Tokenizer, processor: Processor) -> None:
        self.tokenizer = tokenizer
        self._processor = processor
        self.bos_token_id = tokenizer.bos_id
        self.eos_token_id = tokenizer.eos_id
        self.pad_token_id = tokenizer.pad_id

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        _check_skip(skip_special_tokens)
        return self._processor.decode(ids)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(row, skip_special_tokens) for row in sequences]


class MiniGPTv2Processor(ProcessorMixin):
    """See the module docstring."""

    def __init__(self, processor: Processor, style: PromptStyle) -> None:
        super().__init__()  # no transformers sub-processors: our Processor does both halves
        self.processor = processor
        self.style = style
        self.tokenizer = TokenizerView(processor.tokenizer, processor)

    def to_dict(self) -> dict[str, Any]:
        """What ``repr`` shows; nothing of it is saved (``config.json`` holds these settings)."""
        return {
            "processor_class": type(self).__name__,
            "prompt_style": self.style.name,
            "image_size": self.processor.image_size,
            "num_image_tokens": self.processor.num_image_tokens,
            "tokenizer": str(self.processor.tokenizer.path),
        }

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]

    # -- loading and saving --------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any):  # type: ignore[override]
        """From one of our folders: ``tokenizer.model`` and the image size, image-token count
        and prompt style in ``config.json``."""
        from minigptv2.checkpoints.pretrained import read_config

        unknown = sorted(set(kwargs) - _IGNORED_LOADING)
        if unknown:
            raise TypeError(f"{cls.__name__}.from_pretrained does not take {unknown}")
        folder = Path(pretrained_model_name_or_path)
        config = read_config(folder)
        return cls(Processor(Tokenizer(folder), config), STYLES[config.prompt_style])

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> list[str]:  # type: ignore[override]
        """Write ``tokenizer.model``; the rest of the processor's settings live in the model's
        ``config.json``, so save the model to the same folder."""
        if kwargs.get("push_to_hub"):
            raise PromptError("minigptv2 does not push to the hub; save locally and upload")
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / TOKENIZER_FILE
        if target.resolve() != self.processor.tokenizer.path.resolve():
            shutil.copyfile(self.processor.tokenizer.path, target)
        return [str(target)]

    # -- inputs --------------------------------------------------------------------------------

    def __call__(  # type: ignore[override]
        self,
        images: Any = None,
        text: str | Sequence[str] | None = None,
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        **kwargs: Any,
    ) -> BatchFeature:
        """Instructions (or rendered conversations) and at most one image each -> model inputs.

        ``padding`` is accepted for compatibility; prompts are always left-padded to the longest.
        """
        if kwargs:
            raise TypeError(f"{type(self).__name__} does not take {sorted(kwargs)}")
        _check_tensors(return_tensors)
        if text is None:
            raise PromptError("pass text: an instruction such as '[vqa] how many shapes?'")
        texts = [text] if isinstance(text, str) else list(text)
        pictures = _one_image_each(images, len(texts))
        rendered = [
            split_rendered(prompt)
            if INST_CLOSE in prompt
            else render([Turn(prompt)], image=image is not None, style=self.style)
            for prompt, image in zip(texts, pictures, strict=True)
        ]
        return BatchFeature(self.processor.rendered_batch(rendered, pictures))

    def apply_chat_template(  # type: ignore[override]
        self,
        conversation: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
        chat_template: str | None = None,
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tokenize: bool = False,
        return_dict: bool = False,
        return_tensors: str | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Messages -> the prompt text (``tokenize=False``) or the model inputs (``tokenize=True``;
        a ``BatchFeature`` with ``return_dict=True``, else the ``input_ids``).

        The prompt ends at ``[/INST]``, where the answer starts, so ``add_generation_prompt``
        changes nothing; an assistant message cannot be continued (``continue_final_message``).
        """
        if chat_template is not None:
            raise PromptError(
                "MiniGPT-v2's template is minigptv2.prompts.render; omit chat_template"
            )
        if continue_final_message:
            raise PromptError(
                "MiniGPT-v2's template cannot continue an assistant message; end the "
                "conversation with a user message"
            )
        extra = {**(processor_kwargs or {}), **kwargs}
        extra.pop("padding", None)  # always left-padded
        if extra:
            raise TypeError(f"apply_chat_template does not take {sorted(extra)}")
        batched = bool(conversation) and not isinstance(conversation[0], Mapping)
        conversations = list(conversation) if batched else [conversation]
        parsed = [_turns_and_image(messages) for messages in conversations]
        if not tokenize:
            texts = [
                to_text(render(turns, image=image is not None, style=self.style))
                for turns, image in parsed
            ]
            return texts if batched else texts[0]
        _check_tensors(return_tensors)
        for turns, _ in parsed:
            if turns[-1].assistant is not None:
                raise PromptError("to tokenize a prompt, end the conversation with a user message")
        pictures = [None if image is None else load_image(image) for _, image in parsed]
        batch = self.processor.generation_batch(
            [turns for turns, _ in parsed], pictures, style=self.style
        )
        return BatchFeature(batch) if return_dict else batch["input_ids"]

    # -- outputs -------------------------------------------------------------------------------

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:  # type: ignore[override]
        return self.tokenizer.decode(ids, skip_special_tokens)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = True) -> list[str]:  # type: ignore[override]
        return self.tokenizer.batch_decode(sequences, skip_special_tokens)

    def post_process_image_text_to_text(  # type: ignore[override]
        self, generated_outputs: Any, skip_special_tokens: bool = True, **kwargs: Any
    ) -> list[str]:
        if kwargs:
            raise TypeError(f"post_process_image_text_to_text does not take {sorted(kwargs)}")
        return self.batch_decode(generated_outputs, skip_special_tokens)

    def post_process_grounding(
        self, outputs: torch.Tensor | Sequence[str], image_sizes: Sequence[tuple[int, int]]
    ) -> list[dict[str, Any]]:
        """Generated ids (or decoded answers) and each image's (width, height) -> per answer
        ``{"text": answer without box markup, "grounding": [{"phrase", "box"}, …]}``, boxes in
        pixels of that image (``[x1, y1, x2, y2]``), as ``Answer.to_json`` and the HTTP API
        give them."""
        is_text = not isinstance(outputs, torch.Tensor) and all(isinstance(o, str) for o in outputs)
        texts = list(outputs) if is_text else self.batch_decode(outputs)
        if len(texts) != len(image_sizes):
            raise PromptError(f"got {len(texts)} answers but {len(image_sizes)} image sizes")
        pairs = zip(texts, image_sizes, strict=True)
        parsed = [parse_grounding(text, *size) for text, size in pairs]
        return [{"text": grounding.text, "grounding": grounding.to_json()} for grounding in parsed]


def _turns_and_image(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[list[Turn], ImageSource | None]:
    """Chat messages -> our turns and the conversation's image (or None)."""
    turns: list[Turn] = []
    image: ImageSource | None = None
    question: str | None = None
    for number, message in enumerate(messages, start=1):
        role = message.get("role")
        text, images = _content(message.get("content"), number)
        if images and (role != "user" or turns or question is not None or len(images) > 1):
            raise PromptError(
                f"message {number} has an image; MiniGPT-v2 reads one image per conversation, "
                "in the first user message"
            )
        if role == "user":
            if question is not None:
                raise PromptError(
                    f"messages {number - 1} and {number} are both from the user; MiniGPT-v2's "
                    "template alternates user and assistant messages"
                )
            question = text
            if images:
                image = images[0]
        elif role == "assistant":
            if question is None:
                raise PromptError(f"message {number} answers no user message")
            turns.append(Turn(question, text))
            question = None
        else:
            raise PromptError(
                f"message {number} has role {role!r}; MiniGPT-v2's template has user and "
                "assistant messages only (no system prompt)"
            )
    if question is not None:
        turns.append(Turn(question))
    if not turns:
        raise PromptError("the conversation has no messages")
    return turns, image


def _content(content: Any, number: int) -> tuple[str, list[Any]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, Sequence):
        raise PromptError(f"message {number}: content must be a string or a list of parts")
    texts, images = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(part["text"])
        elif kind == "image":
            images.append(_image_of(part, number))
        else:
            raise PromptError(
                f"message {number}: a part of type {kind!r}; MiniGPT-v2 reads 'text' and 'image'"
            )
    return " ".join(texts), images


def _image_of(part: Mapping[str, Any], number: int) -> Any:
    for key in ("image", "path", "url"):
        if part.get(key) is not None:
            value = part[key]
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                raise ImageError(
                    f"message {number}: remote image {value} is not fetched; download it and "
                    "pass a path or a PIL image"
                )
            return value
    return None  # a placeholder: enough to render the text (tokenize=False)


def _one_image_each(images: Any, count: int) -> list[Any]:
    if images is None:
        return [None] * count
    if not isinstance(images, (list, tuple)):
        images = [images]
    flat = []
    for item in images:
        if isinstance(item, (list, tuple)):
            if len(item) != 1:
                raise ImageError(f"got {len(item)} images for one prompt; MiniGPT-v2 reads one")
            item = item[0]
        flat.append(None if item is None else load_image(item))
    if len(flat) != count:
        raise ImageError(f"got {len(flat)} images for {count} prompts; pass one per prompt")
    return flat


def _check_tensors(return_tensors: str | None) -> None:
    if return_tensors not in (None, "pt"):
        raise PromptError(f"return_tensors={return_tensors!r}: minigptv2 returns torch tensors")


def _check_skip(skip_special_tokens: bool) -> None:
    if not skip_special_tokens:
        raise PromptError(
            "minigptv2 decodes answers with special tokens dropped (Processor.decode); "
            "skip_special_tokens=False is not supported"
        )
