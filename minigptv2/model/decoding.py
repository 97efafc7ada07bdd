"""Token-by-token decoding with a KV cache: the loop behind generation, streaming and chat sessions.

A lean stand-in for ``transformers``' ``generate``: the same greedy and sampled choices (repetition
penalty over the generated tokens, then temperature, then top-p, as HF's logits processors apply
them), but written as a Python generator. That gives three things ``generate`` does not:

* one token per ``next()``, so streaming needs no background thread and a consumer that stops
  iterating leaves nothing behind (the cache lives in the generator's frame);
* a caller-owned ``DynamicCache``, so a chat session can keep the cache of the turns already read
  and only run the new tokens through the model;
* less per-step overhead (no logits processors, stopping criteria or output bookkeeping), which is
  most of the time per token for a small model.

Tensors only; the batch is left-padded, so each row's positions come from its attention mask.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary
from transformers import DynamicCache


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen from the logits; the defaults are greedy."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0


GREEDY = Sampling()

# Below this many multiply-adds per model call, a second thread costs more than it saves: every
# one of the call's ~100 small ops pays OpenMP's fork/join, and on a busy machine each join can
# wait a whole scheduler slice (measured on the Shapes model: 10x slower decode steps with 2
# threads than with 1 under load). Large models and long prefills keep every thread.
SINGLE_THREAD_MACS = 50_000_000


def decoder(language_model: nn.Module) -> nn.Module:
    """The causal LM under a ``peft`` wrapper (its LoRA layers stay in place), else the model.

    Calling it directly skips the wrapper's per-call argument handling.
    """
    base = getattr(language_model, "get_base_model", None)
    return base() if callable(base) else language_model


@contextmanager
def threads_for(macs: int) -> Iterator[None]:
    """Run a model call of ``macs`` multiply-adds on one thread if it is small; see above."""
    previous = torch.get_num_threads()
    if macs >= SINGLE_THREAD_MACS or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def step_mask(attention_mask: torch.Tensor, new: int) -> torch.Tensor:
    """The attention mask ``forward_step`` hands the model for ``new`` positions.

    For one new position (every decode step) causality adds nothing, so the (B, 1, 1, cached + 1)
    boolean mask is the padding mask itself: ``transformers`` takes a 4-D mask as given, which
    saves building one from the 2-D mask at every step (0.2 ms, ~5% of a small model's step). For
    a prefill, the 2-D mask is passed on and ``transformers`` adds causality.
    """
    if new != 1:
        return attention_mask
    return attention_mask[:, None, None, :].bool()  # (B, cached + 1) -> (B, 1, 1, cached + 1)


def model_size(model: nn.Module) -> int:
    """Parameters plus buffers (int8 weights are buffers), counted once per model.

    Only ``threads_for`` uses it, to size each call; walking every module costs 0.2-0.3 ms, which
    each generation (each chat turn) used to pay before its first token.
    """
    size = _SIZES.get(model)
    if size is None:
        size = sum(tensor.numel() for tensor in [*model.parameters(), *model.buffers()])
        _SIZES[model] = size
    return size


_SIZES: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def forward_step(
    language_model: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    cache: DynamicCache,
    parameters: int,
) -> torch.Tensor:
    """Run new positions through the model, extending ``cache``; logits of the last position.

    ``attention_mask`` covers the cached and the new positions: (B, cached + new). Positions count
    only attended tokens, so a left-padded row starts at 0 just as it would alone.
    ``parameters`` (the model's size) sizes the call for ``threads_for``.
    """
    new = inputs_embeds.shape[1]
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -new:]  # (B, new)
    # Without padding the mask says nothing causality does not; leaving it out lets the model
    # skip building a (B, 1, new, cached + new) mask at every step.
    mask = None if bool(attention_mask.all()) else step_mask(attention_mask, new)
    with threads_for(parameters * inputs_embeds.shape[0] * new):
        hidden = language_model.model(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        ).last_hidden_state[:, -1]  # (B, hidden): no other position's logits are ever needed
        return project(language_model.lm_head, hidden).float()  # (B, vocab)


def project(head: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """(B, hidden) -> (B, vocab): the LM head, with an fp32 weight read input-major.

    MKL multiplies a few rows by a (vocab, hidden) weight slowly: measured on one thread, 2.0 ms
    for one row of LLaMA-2's 32000 x 128 head, against 0.5 ms for the same product with the weight
    laid out (hidden, vocab) -- a streaming read. The head's output is the largest matrix a small
    model reads per token, so decoding keeps that layout beside the weight (one more copy of the
    head: 16 MB for the tiny configuration, 0.5 GB for LLaMA-2-7B in fp32).
    """
    weight = getattr(head, "weight", None)
    if type(head) is not nn.Linear or head.bias is not None or weight.dtype != torch.float32:
        return head(hidden)  # int8 and bf16 heads have kernels of their own
    return hidden @ input_major(weight)


def input_major(weight: torch.Tensor) -> torch.Tensor:
    """``weight.t().contiguous()``, made once per weight and remade when the weight changes.

    An optimiser step updates the weight in place (its ``_version`` moves on); loading a
    checkpoint may swap its storage (``data_ptr``). Either makes the copy stale.
    """
    key = (weight.data_ptr(), weight._version)
    cached = _INPUT_MAJOR.get(weight)
    if cached is None or cached[0] != key:
        cached = (key, weight.detach().t().contiguous())  # (hidden, vocab)
        _INPUT_MAJOR[weight] = cached
    return cached[1]


# Keyed by identity: a weight's copy goes when the weight does.
_INPUT_MAJOR: WeakIdKeyDictionary = WeakIdKeyDictionary()


def choose(logits: torch.Tensor, generated: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """(B, vocab) logits -> (B,) next ids; ``generated`` (B, t) are the ids chosen so far."""
    if sampling.repetition_penalty != 1.0 and generated.shape[1] > 0:
        seen = logits.gather(1, generated)
        # CTRL's penalty (HF's RepetitionPenaltyLogitsProcessor): shrink positive, grow negative.
        seen = torch.where(
            seen < 0, seen * sampling.repetition_penalty, seen / sampling.repetition_penalty
        )
        logits = logits.scatter(1, generated, seen)
    if not sampling.do_sample:
        return logits.argmax(-1)
    logits = logits / sampling.temperature
    if sampling.top_p < 1.0:
        logits = _keep_top_p(logits, sampling.top_p)
    return torch.multinomial(logits.softmax(-1), 1).squeeze(1)


def _keep_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask all but the smallest set of most likely tokens whose probability reaches ``top_p``."""
    ordered, order = logits.sort(-1, descending=False)
    cumulative = ordered.softmax(-1).cumsum(-1)
    drop = cumulative <= 1 - top_p
    drop[:, -1] = False  # always keep the most likely token
    return logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))


def decode(
    language_model: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    sampling: Sampling = GREEDY,
    cache: DynamicCache | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the (B,) ids of each new step until every row has produced ``eos_token_id``.

    ``inputs_embeds`` (B, T, hidden) are the positions not yet in ``cache``; ``attention_mask``
    (B, cached + T) covers both. Rows that have finished get ``pad_token_id`` and leave the batch
    (their cache rows are dropped), so a long answer does not make the short ones keep paying.
    The last token yielded is not run through the model, so for one row ``cache`` ends holding
    every position but that one. Model calls run under ``inference_mode``, which is never held
    across a ``yield``: the consumer's code between steps runs in whatever grad mode it chose.
    """
    model = decoder(language_model)
    embedding = model.get_input_embeddings()
    parameters = model_size(model)
    cache = DynamicCache() if cache is None else cache
    batch = inputs_embeds.shape[0]
    rows = torch.arange(batch, device=inputs_embeds.device)  # batch rows still generating
    generated = torch.empty((batch, 0), dtype=torch.long, device=inputs_embeds.device)
    with torch.inference_mode():
        logits = forward_step(model, inputs_embeds, attention_mask, cache, parameters)
    for step in range(max_new_tokens):
        with torch.inference_mode():
            chosen = choose(logits, generated[rows], sampling)  # (active,)
            ids = torch.full((batch,), pad_token_id, dtype=torch.long, device=rows.device)
            ids[rows] = chosen
            generated = torch.cat([generated, ids[:, None]], dim=1)
            running = chosen != eos_token_id  # (active,)
        yield ids
        if not bool(running.any()) or step == max_new_tokens - 1:
            return
        with torch.inference_mode():
            if not bool(running.all()):
                keep = running.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, chosen, attention_mask = rows[keep], chosen[keep], attention_mask[keep]
            attention_mask = torch.cat(
                [attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1
            )
            embeds = embedding(chosen[:, None]).to(inputs_embeds.dtype)  # (active, 1, hidden)
            logits = forward_step(model, embeds, attention_mask, cache, parameters)
