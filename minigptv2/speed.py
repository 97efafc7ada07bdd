"""Generation timings: time to first token and tokens/s, batched and over chat turns.

The numbers issue 8 asks for, taken through the public API (``Assistant.stream_ids`` and
``ChatSession.stream``) so they time exactly what users run. ``benchmarks/`` calls these; run
``python -m minigptv2.speed`` for the shipped model's figures. Every timing is the fastest of
``repeats`` runs, because the machine is shared and slower runs measure the neighbours. On a
crowded machine pass ``clock=time.process_time`` (``--cpu-time``) with one thread: the process's
own CPU time, which other processes barely disturb.

Tokens are counted per row until it ends (its ``</s>`` included); rows that finished early and
only receive padding do not count.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.checkpoints.options import add_quantize_argument, quantization
from minigptv2.images import ImageSource, load_image


@dataclass(frozen=True)
class GenerationTiming:
    batch: int
    time_to_first_token_s: float  # images encoded, prompts read, first ids chosen
    total_s: float
    tokens: int  # generated tokens over all rows, each row up to its </s>

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s

    def to_json(self) -> dict[str, float]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


def time_generation(
    assistant: Assistant,
    images: Sequence[ImageSource | None],
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> GenerationTiming:
    """Greedy generation for the batch (images, prompts), fastest of ``repeats`` runs."""
    loaded = [None if image is None else load_image(image) for image in images]
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    eos = assistant.processor.tokenizer.eos_id
    runs = []
    for _ in range(repeats):
        # Building the batch (pixels, ids) is part of what a caller waits for.
        start = clock()
        batch = assistant.processor.generation_batch(prompts, loaded, style=assistant.style)
        first = None
        tokens = 0
        finished = torch.zeros(len(prompts), dtype=torch.bool)
        for ids in assistant.stream_ids(batch, config):
            first = first if first is not None else clock() - start
            tokens += int((~finished).sum())
            finished |= ids == eos
        runs.append(GenerationTiming(len(prompts), first, clock() - start, tokens))
    return min(runs, key=lambda run: run.total_s)


def time_chat_turns(
    assistant: Assistant,
    image: ImageSource | None,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Time to first text of each turn of a fresh ``ChatSession`` (fastest of ``repeats``).

    The first turn's time includes encoding the image, as a user would wait for it.
    """
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    loaded = None if image is None else load_image(image)
    best = [float("inf")] * len(prompts)
    for _ in range(repeats):
        session = assistant.session(loaded)
        for turn, prompt in enumerate(prompts):
            start = clock()
            deltas = session.stream(prompt, config)
            next(deltas, None)
            best[turn] = min(best[turn], clock() - start)
            for _ in deltas:  # finish the turn so the next one follows it
                pass
    return best


def shipped_report(
    repeats: int = 5,
    max_new_tokens: int = 64,
    clock: Callable[[], float] = time.perf_counter,
    **load: object,
) -> dict[str, object]:
    """Batch 1 and 8 generation and three chat turns on the shipped Shapes model.

    ``load`` goes to ``Assistant.load`` (``dtype="bfloat16"``, ``quantize="int4"``).
    """
    from minigptv2.data.shapes import make_sample

    assistant = Assistant.load(**load)
    scenes = [make_sample(seed, "test", task="refer").image for seed in range(8)]
    prompt = "[grounding] describe this image in detail"
    one, eight = (
        time_generation(
            assistant,
            scenes[:n],
            [prompt] * n,
            max_new_tokens=max_new_tokens,
            repeats=repeats,
            clock=clock,
        )
        for n in (1, 8)
    )
    turns = time_chat_turns(
        assistant,
        scenes[0],
        [prompt, "[refer] the red circle", "[vqa] how many shapes are there?"],
        max_new_tokens=max_new_tokens,
        repeats=repeats,
        clock=clock,
    )
    return {
        "batch1": one.to_json(),
        "batch8": eight.to_json(),
        "batch8_over_batch1_tokens_per_s": eight.tokens_per_s / one.tokens_per_s,
        "chat_turn_ttft_s": turns,
        "second_turn_ttft_over_first": turns[1] / turns[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch threads (default: all)")
    parser.add_argument("--cpu-time", action="store_true", help="time CPU use, not wall clock")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"))
    add_quantize_argument(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = shipped_report(
        args.repeats,
        args.max_new_tokens,
        time.process_time if args.cpu_time else time.perf_counter,
        dtype=args.dtype,
        quantize=quantization(args),
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
