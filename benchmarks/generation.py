"""Generation speed: time to first token, tokens/s at batch 1 and 8, and the second chat turn.

Throughput is measured on a fixed number of new tokens (end of sequence is made unreachable), so
batch 1 and batch 8 do the same work per row whatever the model would answer. Each run starts from
images and prompt text -- preprocessing, image encoding and prefill are in the time -- and its
per-step times give:

* time to first token (TTFT): until the first new id exists;
* tokens/s: all new tokens of the batch / total time (what a user of a batch gets);
* decode tokens/s: the tokens after the first / the time after the first (the KV-cached loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.prompts import Turn

# Chat turns about one image: the first asks for a box, the follow-up for a caption.
FIRST_TURN = "[refer] where is the red circle?"
SECOND_TURN = "[caption] briefly describe the image"
FIRST_ANSWER = GenerationConfig(max_new_tokens=24)  # the first turn's answer, before turn 2
ONE_TOKEN = GenerationConfig(max_new_tokens=1)  # a session turn timed or counted to its first id


def fixed_length_steps(
    assistant: Assistant, images: Sequence[Image.Image], prompts: Sequence[str], new_tokens: int
) -> Iterator[torch.Tensor]:
    """Ids of each step for exactly ``new_tokens`` steps (EOS is an id past the vocabulary)."""
    batch = assistant.processor.generation_batch(prompts, images, style=assistant.style)
    never = assistant.model.config.language.vocab_size
    pad = assistant.processor.tokenizer.pad_id
    model = assistant.model
    if hasattr(model, "generate_steps"):
        return model.generate_steps(
            **batch, max_new_tokens=new_tokens, eos_token_id=never, pad_token_id=pad
        )
    ids = model.generate(**batch, max_new_tokens=new_tokens, eos_token_id=never, pad_token_id=pad)
    return iter(ids.unbind(1))  # whole answer at once: TTFT then equals the total time


def timed_run(
    assistant: Assistant, images: Sequence[Image.Image], prompts: Sequence[str], new_tokens: int
) -> tuple[float, float]:
    """(time to first token, total time) of one batched generation of ``new_tokens`` tokens."""
    began = time.perf_counter()
    first = None
    count = 0
    for _ in fixed_length_steps(assistant, images, prompts, new_tokens):
        count += 1
        if first is None:
            first = time.perf_counter() - began
    total = time.perf_counter() - began
    if count != new_tokens:
        raise RuntimeError(f"generation stopped after {count} of {new_tokens} tokens")
    return first or total, total


def best_run(
    assistant: Assistant,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    new_tokens: int,
    repeats: int,
) -> tuple[float, float]:
    """The run with the smallest total time, after one warm-up run."""
    timed_run(assistant, images, prompts, new_tokens)
    return min(
        (timed_run(assistant, images, prompts, new_tokens) for _ in range(repeats)),
        key=lambda run: run[1],
    )


def measure_generation(
    assistant: Assistant,
    scenes: Sequence[tuple[Image.Image, str]],
    *,
    new_tokens: int,
    repeats: int,
) -> dict[str, Any]:
    """TTFT, tokens/s and decode tokens/s at batch 1 and 8; 10-token latency as in issue 8."""
    result: dict[str, Any] = {"new_tokens": new_tokens}
    for size in (1, 8):
        images = [image for image, _ in scenes[:size]]
        prompts = [prompt for _, prompt in scenes[:size]]
        ttft, total = best_run(assistant, images, prompts, new_tokens, repeats)
        _, ten = best_run(assistant, images, prompts, 10, repeats)
        result[f"ttft_s_batch{size}"] = round(ttft, 4)
        result[f"tokens_per_s_batch{size}"] = round(size * new_tokens / total, 2)
        decode = size * (new_tokens - 1) / (total - ttft) if total > ttft else float("nan")
        result[f"decode_tokens_per_s_batch{size}"] = round(decode, 2)
        result[f"generate_10_tokens_s_batch{size}"] = round(ten, 4)
    result["batch8_over_batch1_tokens_per_s"] = round(
        result["tokens_per_s_batch8"] / result["tokens_per_s_batch1"], 3
    )
    return result


def _first_token_s(
    assistant: Assistant, image: Image.Image, prompt: str | list[Turn], config: GenerationConfig
) -> float:
    """Seconds until the first new id of a fresh request (image read and encoded, prefill)."""
    began = time.perf_counter()
    if not hasattr(assistant, "stream_ids"):  # a one-token answer costs what the first token does
        turns = [Turn(prompt)] if isinstance(prompt, str) else prompt
        assistant.generate([image], [turns], ONE_TOKEN)
        return time.perf_counter() - began
    batch = assistant.processor.generation_batch([prompt], [image], style=assistant.style)
    steps = assistant.stream_ids(batch, config)
    next(steps)
    seconds = time.perf_counter() - began
    steps.close()
    return seconds


def _one_token_s(ask: Callable[[], Any]) -> float:
    began = time.perf_counter()
    ask()
    return time.perf_counter() - began


def chat_turn_ttfts(assistant: Assistant, image: Image.Image) -> dict[str, float]:
    """TTFTs of a two-turn chat about ``image``, with a chat session and without one.

    A session encodes the image and reads the first turn once; its second turn reads only the
    new tokens. Session TTFTs are one-token answers (``ask`` with ``max_new_tokens=1``), so they
    do not depend on when the text of a random model's ids becomes printable; the first includes
    creating the session (reading and encoding the image). Without a session, the second turn is
    a fresh request whose prompt repeats the image and the first exchange.
    """
    first_answer = assistant.chat(image, FIRST_TURN, config=FIRST_ANSWER).text  # also warms up
    result = {
        "first_turn_ttft_s_reencode": _first_token_s(assistant, image, FIRST_TURN, FIRST_ANSWER),
        "second_turn_ttft_s_reencode": _first_token_s(
            assistant, image, [Turn(FIRST_TURN, first_answer), Turn(SECOND_TURN)], FIRST_ANSWER
        ),
    }
    if hasattr(assistant, "session"):
        result["first_turn_ttft_s"] = _one_token_s(
            lambda: assistant.session(image).ask(FIRST_TURN, ONE_TOKEN)
        )
        session = assistant.session(image)
        session.ask(FIRST_TURN, FIRST_ANSWER)
        result["second_turn_ttft_s"] = _one_token_s(lambda: session.ask(SECOND_TURN, ONE_TOKEN))
    else:
        result["first_turn_ttft_s"] = result["first_turn_ttft_s_reencode"]
        result["second_turn_ttft_s"] = result["second_turn_ttft_s_reencode"]
    return result


def chat_turn_gflops(assistant: Assistant, image: Image.Image) -> dict[str, float]:
    """Model GFLOPs up to each session turn's first token, in the chats ``chat_turn_ttfts`` times.

    The first turn encodes the image and reads the whole prompt, the second only its new tokens.
    However little overhead each model call has, the turn 2 / turn 1 TTFT ratio cannot go far
    below this ratio of the work each does.
    """
    with FlopCounterMode(display=False) as first:
        assistant.session(image).ask(FIRST_TURN, ONE_TOKEN)
    session = assistant.session(image)
    session.ask(FIRST_TURN, FIRST_ANSWER)
    with FlopCounterMode(display=False) as second:
        session.ask(SECOND_TURN, ONE_TOKEN)
    return {
        "first_turn_gflop": first.get_total_flops() / 1e9,
        "second_turn_gflop": second.get_total_flops() / 1e9,
    }


def measure_chat(
    assistant: Assistant, scenes: Sequence[tuple[Image.Image, str]], repeats: int
) -> dict[str, Any]:
    """Each TTFT is the best over ``repeats`` chats, each about a different image."""
    runs = [chat_turn_ttfts(assistant, image) for image, _ in scenes[: max(1, repeats)]]
    best = {key: min(run[key] for run in runs) for key in runs[0]}
    result: dict[str, Any] = {key: round(value, 4) for key, value in best.items()}
    result["second_turn_ttft_over_first"] = round(
        best["second_turn_ttft_s"] / best["first_turn_ttft_s"], 3
    )
    result["second_turn_ttft_over_first_reencode"] = round(
        best["second_turn_ttft_s_reencode"] / best["first_turn_ttft_s_reencode"], 3
    )
    if hasattr(assistant, "session"):
        # Counted once, on the first chat: a FLOP count, unlike a time, needs no best of N.
        flops = chat_turn_gflops(assistant, scenes[0][0])
        result |= flops
        result["second_turn_flops_over_first"] = round(
            flops["second_turn_gflop"] / flops["first_turn_gflop"], 3
        )
    result["chat_method"] = "session" if hasattr(assistant, "session") else "re-encode"
    return result
