"""Model FLOPs of one training step, the numerator of model-FLOPs utilisation (MFU).

The formula counts matrix products only (norms, activations, softmax and the optimiser are
ignored, as in the PaLM paper's MFU, arXiv 2204.02311 app. B), on real tokens only (padding is
waste, so it lowers MFU rather than raising it):

* forward: ``2 * W * T`` for every weight matrix ``W`` (linear or patch convolution, LoRA's A and B
  and the LM head included, embedding look-ups excluded) applied to ``T`` tokens, plus
  ``4 * T^2 * d`` per attention layer (``Q K^T`` and ``A V`` over all ``T x T`` pairs);
* backward: ``2 * W * T`` more for each matrix whose weight trains (weight gradient), and
  ``2 * W * T`` more (plus twice the attention term) for each matrix whose *input* needs a
  gradient, i.e. that has something trainable before it.

For MiniGPT-v2's stages (frozen ViT; projector + LoRA train) that gives: ViT forward only,
projector ``2 + 2`` (weight gradient, no input gradient), and the language model ``2 + 2`` per
matrix plus ``2`` more for LoRA's matrices -- not the ``6 * N * T`` of training everything. The
Shapes model trains everything, so it gets ``6 * N * T`` (minus the patch convolution's input
gradient) plus attention.

Per token of the language model ``T`` counts the image tokens; the ViT runs on ``1 + patches``
tokens per image and the projector on ``patches / 4``. The LM head runs only on the ``K``
positions that predict an answer token (``MiniGPTv2.forward`` with labels), not on all ``T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minigptv2.constants import IGNORE_INDEX
from minigptv2.model import MiniGPTv2
from minigptv2.model.decoding import decoder


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step, split as the formula is (see the module docstring)."""

    matmul_forward: float
    matmul_backward: float
    attention_forward: float
    attention_backward: float

    @property
    def matmul(self) -> float:
        return self.matmul_forward + self.matmul_backward

    @property
    def total(self) -> float:
        return self.matmul + self.attention_forward + self.attention_backward


def _weights(module: nn.Module) -> tuple[int, int]:
    """(all, trainable) elements of the matrices of ``module``'s linear layers."""
    everything = trainable = 0
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            everything += layer.weight.numel()
            trainable += layer.weight.numel() if layer.weight.requires_grad else 0
    return everything, trainable


def _matmuls(weights: tuple[int, int], tokens: float, input_grad: bool) -> tuple[float, float]:
    everything, trainable = weights
    forward = 2.0 * everything * tokens
    backward = 2.0 * trainable * tokens + (2.0 * everything * tokens if input_grad else 0.0)
    return forward, backward


def training_step_flops(
    model: MiniGPTv2, attention_mask: torch.Tensor, num_images: int, labels: torch.Tensor
) -> StepFlops:
    """FLOPs of forward + backward on a batch whose real tokens ``attention_mask`` marks and whose
    supervised tokens ``labels`` marks (everything else is ``IGNORE_INDEX``)."""
    trainable = model.trainable
    vision = model.config.vision
    patches = vision.num_patches
    vision_tokens = 1 + patches

    # Vision: patch convolution (its input is pixels: never an input gradient), then the blocks.
    conv = model.vision.patch_embed.proj.weight
    conv_weights = (conv.numel(), conv.numel() if conv.requires_grad else 0)
    conv_f, conv_b = _matmuls(conv_weights, num_images * patches, input_grad=False)
    blocks_f, blocks_b = _matmuls(
        _weights(model.vision.blocks), num_images * vision_tokens, input_grad=trainable.vision
    )
    vision_attention = num_images * vision.depth * 4.0 * vision_tokens**2 * vision.width

    projector_f, projector_b = _matmuls(
        _weights(model.projector), num_images * model.config.num_image_tokens, trainable.vision
    )

    # Language model: every matrix but the head sees every real token; the head sees the answer
    # positions. Its inputs need gradients as soon as anything before it trains (the projector
    # does in every MiniGPT-v2 stage).
    language = model.config.language
    lengths = attention_mask.sum(dim=1).double()
    tokens = float(lengths.sum())
    llm_input_grad = trainable.vision or trainable.projector or trainable.language_model
    head_weights = _weights(decoder(model.language_model).get_output_embeddings())
    everything, trainable_weights = _weights(model.language_model)
    body_weights = (everything - head_weights[0], trainable_weights - head_weights[1])
    body_f, body_b = _matmuls(body_weights, tokens, llm_input_grad)
    answers = float((labels[:, 1:] != IGNORE_INDEX).sum())
    head_f, head_b = _matmuls(head_weights, answers, llm_input_grad)
    llm_f, llm_b = body_f + head_f, body_b + head_b
    llm_attention = language.num_layers * 4.0 * float((lengths**2).sum()) * language.hidden_size

    attention_backward = (2.0 * vision_attention if trainable.vision else 0.0) + (
        2.0 * llm_attention if llm_input_grad else 0.0
    )
    return StepFlops(
        matmul_forward=conv_f + blocks_f + projector_f + llm_f,
        matmul_backward=conv_b + blocks_b + projector_b + llm_b,
        attention_forward=vision_attention + llm_attention,
        attention_backward=attention_backward,
    )
