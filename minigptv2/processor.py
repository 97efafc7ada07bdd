"""Images and conversations -> the tensors ``MiniGPTv2`` consumes, and generated ids -> text.

Each ``Piece`` of a rendered conversation is tokenised on its own and split at ``<ImageHere>``,
whose place is taken by exactly ``num_image_tokens`` ``IMAGE_TOKEN_ID`` positions. That
reproduces the reference's segment-wise tokenisation (spec §1.11 step 3, §1.14 step 2). One BOS
starts every sequence; labels keep only the supervised pieces (answers and their ``</s>``).

Training batches are padded on the right, generation prompts on the left (spec §1.11, §1.14).

A packed row (``encode_packed``, a project addition for training throughput) holds several
single-turn questions about one image: their shared start (BOS, template opening, image slots) once,
then each question and answer as a branch with its own ``segments`` number, whose ``positions``
restart where the shared start ends. With the mask of ``model.minigptv2.packed_attention_mask``
every branch is computed exactly as the single-turn sequence it came from, while the image is
encoded once and the shared start is run once for all branches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from minigptv2.config import MiniGPTv2Config
from minigptv2.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMAGE_TOKEN_ID
from minigptv2.errors import ImageError, PromptError
from minigptv2.images import ImageSource, image_to_tensor, load_image
from minigptv2.prompts import EVAL_STYLE, TRAIN_STYLE, ChatFormat, Piece, Turn, render
from minigptv2.tokenizer import AnyTokenizer


@dataclass(frozen=True)
class Encoded:
    """One sequence: ids with image slots expanded, labels (-100 where there is no loss)."""

    input_ids: list[int]
    labels: list[int]
    num_images: int
    # A packed row only: each position's place in its own single-turn sequence, and its branch
    # (0 = the shared start every branch sees, k = the k-th question).
    positions: list[int] | None = None
    segments: list[int] | None = None

    @property
    def last_position(self) -> int:
        return max(self.positions) if self.positions is not None else len(self) - 1

    @property
    def prompt_length(self) -> int:
        """Positions before the first supervised token (the whole length for a prompt)."""
        return next((i for i, label in enumerate(self.labels) if label != IGNORE_INDEX), len(self))

    def __len__(self) -> int:
        return len(self.input_ids)


class Processor:
    def __init__(self, tokenizer: AnyTokenizer, config: MiniGPTv2Config) -> None:
        if tokenizer.vocab_size > config.language.vocab_size:
            raise PromptError(
                f"the tokenizer has {tokenizer.vocab_size} pieces but the language model only "
                f"{config.language.vocab_size} embeddings; use the model's own tokenizer"
            )
        self.tokenizer = tokenizer
        self.image_size = config.vision.image_size
        self.num_image_tokens = config.num_image_tokens
        self.max_context_len = config.max_context_len
        self.max_txt_len = config.max_txt_len
        self.max_positions = config.language.max_position_embeddings

    # -- text ----------------------------------------------------------------------------------

    def encode(self, pieces: Sequence[Piece]) -> Encoded:
        # One BOS, when the tokenizer has one (Qwen2's has none).
        ids = [] if self.tokenizer.bos_id is None else [self.tokenizer.bos_id]
        labels = [IGNORE_INDEX] * len(ids)
        num_images = 0
        for piece in pieces:
            for index, text in enumerate(piece.text.split(IMAGE_PLACEHOLDER)):
                if index > 0:
                    num_images += 1
                    ids += [IMAGE_TOKEN_ID] * self.num_image_tokens
                    labels += [IGNORE_INDEX] * self.num_image_tokens
                tokens = self.tokenizer.encode(text) if text else []
                ids += tokens
                labels += tokens if piece.supervised else [IGNORE_INDEX] * len(tokens)
        encoded = Encoded(ids, labels, num_images)
        self._check_length(encoded)
        return encoded

    def encode_packed(self, turns: Sequence[Turn], style: ChatFormat = TRAIN_STYLE) -> Encoded:
        """Single-turn questions (answered ``turns``) about one image as one packed row."""
        branches = [self.encode(render([turn], image=True, style=style)) for turn in turns]
        shared = _shared_start(branches)
        if IMAGE_TOKEN_ID in branches[0].input_ids[shared:]:
            raise PromptError(
                "packed questions must share their start up to and including the image; render "
                "each as a single turn with the image"
            )
        first = branches[0]
        ids, labels = first.input_ids[:shared], first.labels[:shared]
        positions, segments = list(range(shared)), [0] * shared
        for number, branch in enumerate(branches, start=1):
            ids += branch.input_ids[shared:]
            labels += branch.labels[shared:]
            positions += range(shared, len(branch))
            segments += [number] * (len(branch) - shared)
        return Encoded(ids, labels, 1, positions, segments)

    def _check_length(self, encoded: Encoded) -> None:
        prompt = encoded.prompt_length
        if prompt > self.max_context_len:
            raise PromptError(
                f"the prompt is {prompt} tokens (image included), over the {self.max_context_len}"
                "-token context limit; shorten the text or the conversation history"
            )
        if len(encoded) - prompt > self.max_txt_len:
            raise PromptError(
                f"the answers take {len(encoded) - prompt} tokens, over max_txt_len "
                f"{self.max_txt_len}; shorten them or raise max_txt_len"
            )

    def training_length(
        self,
        turns: Sequence[Turn],
        *,
        image: bool,
        style: ChatFormat = TRAIN_STYLE,
        packed: bool = False,
    ) -> int:
        """Tokens of one training row (a conversation, or packed questions). Raises
        ``PromptError`` for one that training skips: over the context, ``max_txt_len`` or the
        language model's positions."""
        if packed:
            encoded = self.encode_packed(turns, style)
        else:
            encoded = self.encode(render(turns, image=image, style=style))
        if encoded.last_position >= self.max_positions:
            raise PromptError(
                f"{encoded.last_position + 1} tokens exceed {self.max_positions} positions"
            )
        return len(encoded)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Generated ids -> answer text: cut at the first ``</s>``, specials dropped, stripped."""
        ids = [int(i) for i in ids]
        if self.tokenizer.eos_id in ids:
            ids = ids[: ids.index(self.tokenizer.eos_id)]
        return self.tokenizer.decode(ids).strip()

    # -- images --------------------------------------------------------------------------------

    def pixels(self, images: Sequence[ImageSource]) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels of the images, in order."""
        if not images:
            raise ImageError("no images given")
        return torch.stack(
            [image_to_tensor(load_image(image), self.image_size) for image in images]
        )

    # -- batches -------------------------------------------------------------------------------

    def training_batch(
        self,
        conversations: Sequence[Sequence[Turn]],
        images: Sequence[ImageSource | None],
        *,
        style: ChatFormat = TRAIN_STYLE,
        packed: Sequence[bool] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Right-padded ids, attention mask, labels and pixels for conversations with answers;
        rows flagged in ``packed`` are packed single-turn questions (``encode_packed``), and then
        the batch also holds ``position_ids`` and ``segment_ids``."""
        self._check_pairs(conversations, images)
        packed = packed if packed is not None else [False] * len(conversations)
        encoded = [
            self.encode_packed(turns, style)
            if pack
            else self.encode(render(turns, image=image is not None, style=style))
            for turns, image, pack in zip(conversations, images, packed, strict=True)
        ]
        for sample in encoded:
            if sample.prompt_length == len(sample):
                raise PromptError("a training conversation needs an answer in its last turn")
        return self._batch(encoded, [image for image in images if image is not None], "right")

    def generation_batch(
        self,
        prompts: Sequence[str | Sequence[Turn]],
        images: Sequence[ImageSource | None],
        *,
        style: ChatFormat = EVAL_STYLE,
    ) -> dict[str, torch.Tensor]:
        """Left-padded prompts (an instruction, or turns whose last one is open) and pixels."""
        self._check_pairs(prompts, images)
        rendered = []
        for prompt, image in zip(prompts, images, strict=True):
            turns = [Turn(prompt)] if isinstance(prompt, str) else list(prompt)
            if turns and turns[-1].assistant is not None:
                raise PromptError("the last turn of a prompt must be open (assistant=None)")
            rendered.append(render(turns, image=image is not None, style=style))
        return self.rendered_batch(rendered, images)

    def rendered_batch(
        self, rendered: Sequence[Sequence[Piece]], images: Sequence[ImageSource | None]
    ) -> dict[str, torch.Tensor]:
        """``generation_batch`` for prompts already rendered (``prompts.render``, or text from
        ``prompts.to_text`` split again by ``prompts.split_rendered``)."""
        self._check_pairs(rendered, images)
        encoded = [self.encode(pieces) for pieces in rendered]
        for row, (sample, image) in enumerate(zip(encoded, images, strict=True)):
            if sample.num_images != (image is not None):
                raise PromptError(
                    f"prompt {row} has {sample.num_images} {IMAGE_PLACEHOLDER} slot(s) but "
                    f"{int(image is not None)} image; MiniGPT-v2 reads one image per prompt, its "
                    "slot in the first user message (or none and no slot for text only)"
                )
        batch = self._batch(encoded, [image for image in images if image is not None], "left")
        del batch["labels"]  # a prompt has nothing to supervise
        return batch

    def _check_pairs(self, texts: Sequence[object], images: Sequence[object]) -> None:
        if isinstance(texts, str):
            raise PromptError("pass a list of prompts, not a single string")
        if len(texts) != len(images):
            raise PromptError(
                f"got {len(texts)} prompts but {len(images)} images; pass one image (or None for "
                "text only) per prompt"
            )
        if not texts:
            raise PromptError("the batch is empty; pass at least one prompt")

    def _batch(
        self, encoded: Sequence[Encoded], images: Sequence[ImageSource], padding_side: str
    ) -> dict[str, torch.Tensor]:
        longest = max(len(sample) for sample in encoded)
        last = max(sample.last_position for sample in encoded)
        if last >= self.max_positions:
            raise PromptError(
                f"a sequence of {last + 1} tokens exceeds the language model's "
                f"{self.max_positions} positions; shorten the conversation"
            )
        pad = self.tokenizer.pad_id
        input_ids = torch.full((len(encoded), longest), pad, dtype=torch.long)
        labels = torch.full((len(encoded), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), longest), dtype=torch.long)
        for row, sample in enumerate(encoded):
            start = 0 if padding_side == "right" else longest - len(sample)
            span = slice(start, start + len(sample))
            input_ids[row, span] = torch.tensor(sample.input_ids)
            labels[row, span] = torch.tensor(sample.labels)
            attention_mask[row, span] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if any(sample.segments is not None for sample in encoded):
            batch.update(_packing_tensors(encoded, longest))
        if images:
            batch["pixel_values"] = self.pixels(images)
        return batch


def _shared_start(encoded: Sequence[Encoded]) -> int:
    """Length of the unsupervised start that every sequence of ``encoded`` has in common."""
    first = encoded[0]
    length = min(len(sample) for sample in encoded)
    for index in range(length):
        token = first.input_ids[index]
        if first.labels[index] != IGNORE_INDEX or any(
            sample.input_ids[index] != token for sample in encoded
        ):
            return index
    return length


def _packing_tensors(encoded: Sequence[Encoded], longest: int) -> dict[str, torch.Tensor]:
    """(B, T) ``position_ids`` and ``segment_ids`` of right-padded rows; an ordinary row is one
    segment 0 at positions 0..n-1, padding is segment -1."""
    position_ids = torch.arange(longest).repeat(len(encoded), 1)
    segment_ids = torch.full((len(encoded), longest), -1, dtype=torch.long)
    for row, sample in enumerate(encoded):
        if sample.positions is not None:
            position_ids[row, : len(sample)] = torch.tensor(sample.positions)
        segment_ids[row, : len(sample)] = (
            torch.tensor(sample.segments) if sample.segments is not None else 0
        )
    return {"position_ids": position_ids, "segment_ids": segment_ids}
