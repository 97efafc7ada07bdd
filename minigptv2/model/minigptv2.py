"""MiniGPT-v2: image -> EVA ViT -> ln_vision -> drop CLS -> 4-token merge -> linear -> LLaMA.

The data flow of spec §1.1.

Tensors only. Prompts become ids in ``processor.py``; each image contributes ``num_image_tokens``
positions whose id is ``IMAGE_TOKEN_ID``, and this module scatters the projected image features into
those positions of the embedding sequence before the language model runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache
from transformers.utils import ModelOutput

from minigptv2.config import MiniGPTv2Config, Trainable
from minigptv2.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from minigptv2.errors import ImageSlotMismatchError
from minigptv2.model.decoding import GREEDY, Sampling, decode, decoder
from minigptv2.model.language import build_language_model
from minigptv2.model.loss import average_losses, sample_ids, token_losses
from minigptv2.model.projector import Projector
from minigptv2.model.vision import EvaViT

COMPONENTS = ("vision", "projector", "language_model", "lora")


@dataclass
class AnswerLoss(ModelOutput):
    """The training forward's output: the loss, and each row's summed answer-token loss
    (detached, for per-task logging). ``logits`` stays None: only answer positions are scored."""

    loss: torch.Tensor | None = None
    row_losses: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def packed_attention_mask(
    attention_mask: torch.Tensor, segment_ids: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """(B, T) padding mask and segments -> (B, 1, T, T) additive mask: query i sees key j <= i
    when j is not padding and is in the shared start (segment 0) or in i's own segment."""
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    keys, queries = segment_ids[:, None, :], segment_ids[:, :, None]  # (B, 1, T), (B, T, 1)
    allowed = causal & attention_mask.bool()[:, None, :] & ((keys == 0) | (keys == queries))
    # A padding query sees the shared start, so its softmax row is never empty (no NaN).
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]  # (B, 1, T, T)


class MiniGPTv2(nn.Module):
    def __init__(self, config: MiniGPTv2Config) -> None:
        super().__init__()
        self.config = config
        self.vision = EvaViT(config.vision)
        # ``ln_vision`` of the reference: frozen with the ViT and never loaded, hence the identity
        # affine transform that the released projector was trained on (spec §1.4).
        self.vision_norm = nn.LayerNorm(config.vision.width, eps=config.vision_norm_eps)
        self.projector = Projector(
            config.vision.width, config.language.hidden_size, config.tokens_merged
        )
        self.language_model = build_language_model(
            config.language, config.lora, config.lora_targets
        )
        self._cast_frozen_weights(getattr(torch, config.dtype))
        self.set_trainable(config.trainable)

    # -- what trains ---------------------------------------------------------------------------

    def set_trainable(self, trainable: Trainable) -> None:
        """Set ``requires_grad`` per component; frozen vision also stays in eval mode.

        The config records it, so that a saved model says what its last stage trained and the
        next stage, loading it, trains the same unless told otherwise.
        """
        self.config = self.config.replace(trainable=trainable)
        self.trainable = trainable
        for component, parameters in self.parameter_groups().items():
            for parameter in parameters:
                parameter.requires_grad_(getattr(trainable, component))
        self.train(self.training)

    def set_image_size(self, image_size: int) -> None:
        """Take ``image_size`` px images (the ViT's position table is resampled: EvaViT).

        More pixels give more image tokens, so an object spans more of them; the language model
        has to learn the new layout, so this starts a training stage (configs/shapes/stage4.yaml).
        """
        # The whole config first: a size whose patches do not merge evenly fails here, unchanged.
        config = self.config.replace(vision=replace(self.config.vision, image_size=image_size))
        self.vision.set_image_size(image_size)
        self.config = config

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by component: vision (with its norm), projector, language_model, lora."""
        groups: dict[str, list[nn.Parameter]] = {name: [] for name in COMPONENTS}
        for name, parameter in self.named_parameters():
            if name.startswith(("vision.", "vision_norm.")):
                groups["vision"].append(parameter)
            elif name.startswith("projector."):
                groups["projector"].append(parameter)
            elif "lora_" in name:
                groups["lora"].append(parameter)
            else:
                groups["language_model"].append(parameter)
        return groups

    def train(self, mode: bool = True) -> MiniGPTv2:
        super().train(mode)
        if not getattr(self, "trainable", Trainable()).vision:
            # Frozen encoder: no dropout or batch statistics should ever change its output.
            self.vision.eval()
            self.vision_norm.eval()
        return self

    def _cast_frozen_weights(self, dtype: torch.dtype) -> None:
        # The projector, LoRA and ln_vision stay fp32 as in the reference; the big frozen weights
        # take the configured dtype (bf16 halves memory and doubles CPU matmul speed).
        if dtype == torch.float32:
            return
        self.vision.to(dtype)
        for name, parameter in self.language_model.named_parameters():
            if "lora_" not in name:
                parameter.data = parameter.data.to(dtype)

    # -- tensors in, tensors out ---------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.projector.linear.weight.device

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) pixels -> (N, num_image_tokens, hidden) language-model inputs."""
        vision_dtype = self.vision.patch_embed.proj.weight.dtype
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable.vision):
            features = self.vision(pixel_values.to(vision_dtype))  # (N, 1 + P, C)
            # ln_vision runs in fp32 and casts back, as the reference's LayerNorm subclass does.
            features = self.vision_norm(features.float()).to(vision_dtype)
        patch_tokens = features[:, 1:]  # drop CLS: (N, P, C)
        return self.projector(patch_tokens)  # (N, P / 4, hidden)

    def embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None,
        *,
        image_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with image features scattered into the ``IMAGE_TOKEN_ID`` positions.

        ``image_features`` (N, num_image_tokens, hidden), from ``encode_images``, stand in for
        ``pixel_values`` when the images were encoded before (a chat session encodes once).
        """
        image_slots = input_ids == IMAGE_TOKEN_ID  # (B, T)
        embedding = self.language_model.get_input_embeddings()
        embeds = embedding(input_ids.masked_fill(image_slots, 0))  # (B, T, hidden)
        images = image_features if image_features is not None else pixel_values
        count = 0 if images is None else images.shape[0]
        expected = count * self.config.num_image_tokens
        found = int(image_slots.sum())
        if found != expected:
            raise ImageSlotMismatchError(
                f"the inputs have {found} image positions but {count} image(s) give {expected} "
                f"features ({self.config.num_image_tokens} per image); build the ids with the "
                "Processor so every <ImageHere> expands to exactly one image's tokens"
            )
        if expected == 0:
            return embeds
        if image_features is None:
            image_features = self.encode_images(pixel_values)  # (N, I, hidden)
        # Images fill the slots in reading order: sample by sample, image by image.
        return embeds.masked_scatter(image_slots.unsqueeze(-1), image_features.to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        loss_average: str = "tokens",
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> Any:
        """Right-padded batch -> ``transformers`` output.

        ``position_ids`` and ``segment_ids`` (B, T) come with packed rows (``processor.py``): each
        branch then attends to the shared start and to itself only (``packed_attention_mask``).

        Without ``labels``: ``.logits`` (B, T, vocab). With ``labels``: an ``AnswerLoss``, whose
        ``.loss`` is the cross-entropy over answer tokens averaged per ``loss_average``
        (``loss.py``; "tokens" is what ``LlamaForCausalLM`` computes), and ``.row_losses`` each
        row's summed token losses. The vocabulary projection runs only on the positions that
        predict an answer token. Prompts and image slots are most of a
        MiniGPT-v2 sequence, and with a 32000-word vocabulary their (B, T, vocab) logits and
        log-softmax were most of a small model's step.
        """
        embeds = self.embed(input_ids, pixel_values)
        if segment_ids is not None:
            attention_mask = packed_attention_mask(attention_mask, segment_ids, embeds.dtype)
        if labels is None:
            return self.language_model(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            )
        return self._answer_loss(
            embeds, attention_mask, labels, loss_average, position_ids, segment_ids
        )

    def _answer_loss(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        average: str,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> AnswerLoss:
        causal_lm = decoder(self.language_model)
        hidden = causal_lm.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state  # (B, T, hidden)
        # Position t predicts token t + 1; only positions whose next token is a label count.
        targets = labels[:, 1:]  # (B, T - 1)
        kept = targets != IGNORE_INDEX
        answer_hidden = hidden[:, :-1][kept]  # (K, hidden), K answer tokens in the batch
        logits = causal_lm.get_output_embeddings()(answer_hidden)  # (K, vocab)
        rows = kept.nonzero()[:, 0]
        losses = token_losses(logits, targets[kept])
        row_losses = losses.new_zeros(len(labels)).index_add_(0, rows, losses.detach())
        samples = sample_ids(labels, segment_ids)[kept]
        return AnswerLoss(loss=average_losses(losses, samples, average), row_losses=row_losses)

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        *,
        max_new_tokens: int = 20,
        eos_token_id: int = 2,
        pad_token_id: int = 0,
        **sampling: Any,
    ) -> torch.Tensor:
        """Left-padded prompts -> (B, new tokens) ids; stops at ``eos_token_id`` (``</s>``).

        Greedy by default; pass ``do_sample=True, temperature=…, top_p=…`` (and optionally
        ``repetition_penalty``) to sample. Rows that finish early are filled with ``pad_token_id``.
        """
        steps = self.generate_steps(
            input_ids,
            attention_mask,
            pixel_values,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            sampling=Sampling(**sampling),
        )
        return torch.stack(list(steps), dim=1)  # (B, new tokens)

    def generate_steps(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        *,
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int,
        sampling: Sampling = GREEDY,
        cache: DynamicCache | None = None,
        image_features: torch.Tensor | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the (B,) ids of each generated step; see ``decoding.decode``.

        With a ``cache`` holding earlier positions, ``input_ids`` are only the new positions and
        ``attention_mask`` covers the cached ones too.
        """
        with torch.inference_mode():
            embeds = self.embed(input_ids, pixel_values, image_features=image_features)
        yield from decode(
            self.language_model,
            embeds,
            attention_mask,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            sampling=sampling,
            cache=cache,
        )
