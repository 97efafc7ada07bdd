"""The training loop: set-up, steps, checkpoints, export — one function to read top to bottom.

``minigptv2 train --config configs/….yaml`` calls ``train``. The same command under
``torchrun --nproc-per-node N`` runs data-parallel: DDP, or FSDP (``fsdp.py``) with
``parallel: fsdp`` and by default for the 7B size. Each rank reads its own slice of every step's
samples (see ``data.py``), so the global batch is ``batch_size * grad_accum * N``.

What a run writes to ``out_dir``: ``metrics.jsonl`` (loss, lr, samples/s per logged step; skipped
steps; held-out scores with ``eval_every``), ``checkpoints/step_*``, ``curves.png`` (at the end
and on Ctrl-C), ``model/`` (the export) and ``train_config.json``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from minigptv2.checkpoints.pretrained import recover_interrupted_writes
from minigptv2.config import get_preset
from minigptv2.constants import IGNORE_INDEX
from minigptv2.errors import ConfigError, MiniGPTv2Error
from minigptv2.model import MiniGPTv2
from minigptv2.model.loss import answer_count
from minigptv2.processor import Processor
from minigptv2.prompts import chat_format
from minigptv2.tasks import TASK_TOKENS
from minigptv2.tokenizer import (
    AnyTokenizer,
    Tokenizer,
    VocabularyTooSmallError,
    train_tokenizer,
)
from minigptv2.train import evaluation, fsdp
from minigptv2.train.checkpoint import (
    list_checkpoints,
    load_training_checkpoint,
    trainable_state,
    write_training_checkpoint,
)
from minigptv2.train.config import (
    TrainConfig,
    init_folder,
    resolve_precision,
    vocabulary_advice,
)
from minigptv2.train.data import (
    Collator,
    StepBatchSampler,
    build_mixture,
    corpus,
    vocabulary_mixture,
)
from minigptv2.train.distributed import (
    World,
    all_ranks_agree,
    barrier,
    close_world,
    gather_rng_states,
    gradient_sync,
    init_world,
)
from minigptv2.train.optim import build_optimizer, learning_rate
from minigptv2.train.plot import NothingToPlot, plot_curves
from minigptv2.train.scratch import COORDINATES, order_coordinate_tokens

# Pieces a from-scratch tokenizer keeps whole: the template, the task identifiers and the box
# grammar with its 101 coordinates (a box is then 6 tokens instead of about 18).
TEMPLATE_SYMBOLS = (
    "[INST]", "[/INST]", "<Img>", "</Img>", "<p>", "</p>", "<delim>", *TASK_TOKENS,
    *COORDINATES,
)  # fmt: skip


class NonFiniteLoss(RuntimeError):
    pass


def train(config: TrainConfig, *, resume: bool = False) -> Path:
    """Run one stage; returns the folder of the exported model (``out_dir/model``)."""
    evaluation.check_eval_config(config)
    init_folder(config.init_from)  # a missing starting model fails before anything is written
    _check_vision_file(config.eva)
    world = init_world()
    out = Path(config.out_dir)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # A run killed while writing a checkpoint or its export leaves staging folders (64 MB
        # each for Shapes) that nothing else would ever remove.
        for folder in (out / "checkpoints", out):
            for change in recover_interrupted_writes(folder):
                _say(world, f"{folder}: {change} (left by an interrupted write)")
    barrier(world)  # the others list the checkpoints after rank 0 has tidied them
    _warn_if_warmup_outlasts_the_run(world, config)
    torch.manual_seed(config.seed)
    model, tokenizer = _build_model(config, out, world)
    processor = Processor(tokenizer, model.config)
    parallel = fsdp.resolve_parallel(config.parallel, model) if world.size > 1 else "none"
    if parallel == "fsdp":
        # Before the optimiser is built: it must hold the sharded parameters.
        model = fsdp.shard(model, world)
    optimizer = build_optimizer(model, config.optim)

    start = 0
    checkpoints = list_checkpoints(out / "checkpoints")
    if resume and checkpoints:
        start = load_training_checkpoint(
            checkpoints[-1], model, optimizer, rank=world.rank, world_size=world.size
        )
        _say(world, f"resumed from {checkpoints[-1]} at step {start}")
    elif resume:
        _say(world, f"nothing to resume in {out / 'checkpoints'}; starting at step 0")

    mixture = build_mixture(config.data, "train", config.seed)
    sampler = StepBatchSampler(
        mixture, start, config.steps, config.batch_size, config.grad_accum, world.rank, world.size
    )
    loader = DataLoader(
        mixture,
        batch_sampler=sampler,
        collate_fn=Collator(
            processor,
            chat_format(model.config, tokenizer, training=True),
            pieces=config.pieces,
        ),
        num_workers=config.data.num_workers,
        # Its own generator: drawing worker seeds from the global one would shift the dropout
        # masks of a resumed run away from those of an uninterrupted one.
        generator=torch.Generator().manual_seed(config.seed),
    )
    # Ranks draw their batch's dataset independently (as the reference does), and a text-only
    # batch leaves the vision encoder unused, hence find_unused_parameters.
    network = (
        DistributedDataParallel(model, find_unused_parameters=True) if parallel == "ddp" else model
    )
    model.train()
    if world.size > 1:
        _say(world, f"{world.size} ranks, {parallel.upper()}")

    log_file = (out / "metrics.jsonl").open("a") if world.is_main else None
    # tqdm's own counters give step/total, elapsed and the ETA (it excludes ``initial`` from the
    # rate, so a resumed run's ETA is right); loss, lr and samples/s go in the postfix.
    progress = tqdm(
        total=config.steps,
        initial=start,
        unit="step",
        disable=not world.is_main,
        dynamic_ncols=True,
    )
    batches = iter(loader)
    step = start
    scores: dict[str, str] = {}  # the latest held-out scores, kept in the progress bar
    tally = TaskTally()
    stats: dict[str, str] = {}  # the last finished step's loss, lr and samples/s
    try:
        for step in range(start, config.steps):
            began = time.perf_counter()
            lr = learning_rate(step, config.steps, config.optim)
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                loss = _optimisation_step(network, model, optimizer, batches, config, world, tally)
            except NonFiniteLoss as error:
                _say(world, f"step {step + 1}: {error}; skipped, weights unchanged")
                _log(log_file, {"step": step + 1, "lr": lr, "skipped": str(error)})
            else:
                samples_per_s = (config.batch_size * config.grad_accum * world.size) / (
                    time.perf_counter() - began
                )
                stats = {
                    "loss": f"{loss:.3f}",
                    "lr": f"{lr:.2e}",
                    "samples_s": f"{samples_per_s:.1f}",
                }
                if (step + 1) % config.log_every == 0:
                    record = {"step": step + 1, "loss": loss, "lr": lr}
                    record |= {"samples_per_s": samples_per_s, "task_loss": tally.take()}
                    _log(log_file, record)
            scores = _evaluate_if_due(world, step + 1, model, processor, config, log_file, scores)
            # After the evaluation, so that the finished bar shows the last step's scores.
            progress.set_postfix(**stats, **scores, refresh=False)
            progress.update(1)
            if (step + 1) % config.save_every == 0 and step + 1 < config.steps:
                _checkpoint(world, out, step + 1, model, optimizer)
        _checkpoint(world, out, config.steps, model, optimizer)
        check_in_sync(world, model)
        target = _export(world, out, model, tokenizer, config)
    except KeyboardInterrupt:
        _say(world, f"interrupted at step {step}; saving a checkpoint to resume from")
        _checkpoint(world, out, step, model, optimizer)
        raise
    finally:
        progress.close()
        if log_file:
            log_file.close()
            _plot(world, out)
    # Only a run that every rank finished leaves the group (a failed rank's peers would wait in
    # its barrier; torchrun ends them instead).
    close_world(world)
    return target


def _check_vision_file(eva: str | None) -> None:
    if eva is not None and not Path(eva).is_file():
        raise ConfigError(
            f"eva={eva}: no such file. A Shapes stage 1 starts from stage 0's encoder: run"
            f" `minigptv2 pretrain-vision --out {Path(eva).parent}` first (scripts/train_shapes.sh"
            " does); a language-model folder takes BLIP-2's eva_vit_g.pth"
        )


def _warn_if_warmup_outlasts_the_run(world: World, config: TrainConfig) -> None:
    """A short run (say ``steps=20`` on a stage config) never leaves the warm-up: it trains at a
    fraction of the rate the config names, which looks like a model that does not learn."""
    warmup = config.optim.warmup_steps
    if config.steps >= warmup:
        return
    last = learning_rate(config.steps - 1, config.steps, config.optim)
    _say(
        world,
        f"warning: steps={config.steps} is shorter than optim.warmup_steps={warmup}: the learning"
        f" rate rises to {last:.2e} only, never to optim.lr={config.optim.lr:g}; pass"
        " optim.warmup_steps=N (N < steps) for a short run",
    )


def _log(log_file: Any, record: dict[str, Any]) -> None:
    if log_file:
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()


def _evaluate_if_due(
    world: World,
    step: int,
    model: MiniGPTv2,
    processor: Processor,
    config: TrainConfig,
    log_file: Any,
    scores: dict[str, str],
) -> dict[str, str]:
    """Held-out scores after ``step`` on rank 0 (the others wait); returns the bar's scores."""
    if not evaluation.due(step, config):
        return scores
    whole = _unsharded(model)
    if world.is_main:
        try:
            summary = evaluation.evaluate_model(whole, processor, config)
        except MiniGPTv2Error as error:
            # A broken evaluation must not cost the training run; say so and carry on.
            _say(world, f"step {step}: evaluation failed: {error}")
        else:
            headline = evaluation.headline(summary)
            _log(log_file, {"step": step, "eval_split": config.eval_split, "eval": headline})
            _say(world, f"step {step}: {config.eval_split} " + json.dumps(headline))
            scores = evaluation.short_names(headline, config.eval_benchmark)
    barrier(world)
    return scores


def _plot(world: World, out: Path) -> None:
    """``out/curves.png`` from the log; a failure to plot never fails the run it describes."""
    try:
        plot_curves(out / "metrics.jsonl", out / "curves.png")
    except NothingToPlot as error:
        _say(world, f"no curves.png: {error}")
    else:
        _say(world, f"loss and learning-rate curves: {out / 'curves.png'}")


class TaskTally:
    """Mean answer-token loss per task since the last ``take`` (this rank's samples only)."""

    def __init__(self) -> None:
        self.loss: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()

    def add(self, tasks: Sequence[str], row_losses: torch.Tensor, labels: torch.Tensor) -> None:
        counts = (labels[:, 1:] != IGNORE_INDEX).sum(dim=1).tolist()
        for task, loss, count in zip(tasks, row_losses.tolist(), counts, strict=True):
            self.loss[task] += loss
            self.tokens[task] += count

    def take(self) -> dict[str, float]:
        means = {task: self.loss[task] / count for task, count in self.tokens.items() if count}
        self.loss.clear()
        self.tokens.clear()
        return dict(sorted(means.items()))


def _optimisation_step(
    network: torch.nn.Module,
    model: MiniGPTv2,
    optimizer: torch.optim.Optimizer,
    batches: Any,
    config: TrainConfig,
    world: World,
    tally: TaskTally | None = None,
) -> float:
    """Accumulate ``grad_accum`` micro-batches, clip, step. Returns the mean loss."""
    total = 0.0
    autocast = (
        torch.autocast(model.device.type, dtype=torch.bfloat16)
        if resolve_precision(config.precision) == "bf16"
        else contextlib.nullcontext()
    )
    for micro in range(config.grad_accum):
        pieces = next(batches)
        if fsdp.is_sharded(model):
            fsdp.check_same_pieces(pieces, config.pieces, world)
        counts = [
            answer_count(piece["labels"], config.loss_average, piece.get("segment_ids"))
            for piece in pieces
        ]
        total_count = max(sum(counts), 1) * config.grad_accum
        loss = torch.zeros(())
        for index, (piece, count) in enumerate(zip(pieces, counts, strict=True)):
            # Gradients are averaged across ranks only in the step's very last backward pass.
            last = micro == config.grad_accum - 1 and index == len(pieces) - 1
            weight = count / total_count
            tasks = piece.pop("tasks", None)
            with gradient_sync(network, last), autocast:
                output = network(**piece, loss_average=config.loss_average)
                share = output.loss * weight
                share.backward()
            if tally is not None and tasks is not None:
                tally.add(tasks, output.row_losses, piece["labels"])
            loss += share.detach()
        # Checked after the backward passes, so every rank runs the same collectives; a
        # non-finite loss leaves only gradients behind, and those are dropped.
        if not all_ranks_agree(bool(torch.isfinite(loss)), world):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(f"loss is {loss.item()} on this or another rank")
        total += loss.item()
    if config.optim.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def _build_model(config: TrainConfig, out: Path, world: World) -> tuple[MiniGPTv2, AnyTokenizer]:
    """The stage's starting model: continued from ``init_from``, built on the language-model
    folder ``llm``, or built from a preset (from scratch)."""
    if config.init_from is not None:
        from minigptv2.checkpoints import load_pretrained

        model, tokenizer = load_pretrained(init_folder(config.init_from))
    elif config.llm is not None:
        from minigptv2.checkpoints.language_folder import load_with_language_model

        model, tokenizer = load_with_language_model(
            config.llm, get_preset(config.model), eva=config.eva
        )
    else:
        tokenizer = _from_scratch_tokenizer(config, out, world)
        preset = get_preset(config.model)
        language = replace(preset.language, vocab_size=tokenizer.vocab_size)
        model = MiniGPTv2(preset.replace(language=language))
        order_coordinate_tokens(model, tokenizer, seed=config.seed)
        if config.eva is not None:
            from minigptv2.checkpoints.released import load_vision_encoder

            load_vision_encoder(model, config.eva)
    if config.image_size is not None:
        model.set_image_size(config.image_size)
    if config.trainable is not None:
        model.set_trainable(config.trainable)
    if config.gradient_checkpointing:
        model.vision.gradient_checkpointing = True
        model.language_model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    return model, tokenizer


def _from_scratch_tokenizer(config: TrainConfig, out: Path, world: World) -> Tokenizer:
    """Train (rank 0) or reuse the run's tokenizer, so a resumed run keeps the same ids."""
    folder = out / "tokenizer"
    if world.is_main and not (folder / "tokenizer.model").is_file():
        lines = corpus(vocabulary_mixture(config.data, config.seed), config.tokenizer_samples)
        try:
            train_tokenizer(
                lines, folder, vocab_size=config.tokenizer_vocab, symbols=TEMPLATE_SYMBOLS
            )
        except VocabularyTooSmallError as error:
            raise ConfigError(vocabulary_advice(config, error.required)) from None
    barrier(world)
    return Tokenizer(folder)


def _checkpoint(
    world: World, out: Path, step: int, model: MiniGPTv2, optimizer: torch.optim.Optimizer
) -> None:
    """All ranks call it; rank 0 writes the single-process format (FSDP shards gathered)."""
    if fsdp.is_sharded(model):
        weights, optimizer_state = fsdp.gather_training_state(model, optimizer)
    else:
        weights, optimizer_state = trainable_state(model), optimizer.state_dict()
    rng_states = gather_rng_states(world)
    if world.is_main:
        folder = out / "checkpoints"
        write_training_checkpoint(folder, step, weights, optimizer_state, rng_states)
    barrier(world)


def _unsharded(model: MiniGPTv2) -> MiniGPTv2 | None:
    """The model as rank 0 can use it alone (all ranks call it; None on the others under FSDP)."""
    return fsdp.unsharded_copy(model) if fsdp.is_sharded(model) else model


def _export(
    world: World, out: Path, model: MiniGPTv2, tokenizer: AnyTokenizer, config: TrainConfig
) -> Path:
    from minigptv2.checkpoints import save_pretrained

    target = out / "model"
    whole = _unsharded(model)
    if world.is_main:
        # Trainable-only when the base files are on record (init_from, or llm with an EVA file).
        full = getattr(whole, "weights_source", None) is None
        save_pretrained(whole, tokenizer, target, full=full)
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    barrier(world)
    _say(world, f"model saved to {target}")
    return target


def check_in_sync(world: World, model: MiniGPTv2) -> None:
    """Fail loudly if data-parallel ranks ended with different weights."""
    if world.size == 1:
        return
    if fsdp.is_sharded(model):
        _say(
            world, f"{world.size} ranks sharded (FSDP): one copy of each weight, nothing to compare"
        )
        return
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = [torch.zeros_like(checksum) for _ in range(world.size)]
    torch.distributed.all_gather(gathered, checksum)
    spread = max(gathered) - min(gathered)
    if spread > 1e-6 * max(1.0, abs(float(checksum))):
        raise RuntimeError(f"ranks diverged: weight checksums {[float(g) for g in gathered]}")
    _say(world, f"{world.size} ranks in sync (weight checksum {float(checksum):.6f})")


def _say(world: World, message: str) -> None:
    if world.is_main:
        tqdm.write(message)
