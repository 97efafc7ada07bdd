"""Training throughput: one optimisation step (forward, backward, AdamW) on a prepared batch.

Tokenising and collating happen in the data workers during training, so they are prepared once
here and left out of the step time; the step is what the training loop's hot path runs.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.flops import training_step_flops
from benchmarks.measure import best_time
from minigptv2.model import MiniGPTv2
from minigptv2.train.optim import OptimConfig, build_optimizer


def measure_training(
    model: MiniGPTv2, batch: dict[str, torch.Tensor], matmul_gflops: float, *, steps: int = 5
) -> dict[str, Any]:
    """Best step time over ``steps`` steps (after one that allocates AdamW's state), and MFU.

    MFU = model FLOPs of the step (``benchmarks.flops``) / step time / measured fp32 matmul
    FLOP/s. The model's weights change: measure generation before training.
    """
    model.train()
    optimizer = build_optimizer(model, OptimConfig(lr=1e-5, warmup_steps=0))

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = best_time(step, repeats=steps, warmup=1)
    model.eval()
    num_images = 0 if batch.get("pixel_values") is None else batch["pixel_values"].shape[0]
    flops = training_step_flops(model, batch["attention_mask"], num_images, batch["labels"])
    batch_size = batch["input_ids"].shape[0]
    return {
        "train_batch": batch_size,
        "train_tokens": int(batch["attention_mask"].sum()),
        "train_step_s": round(seconds, 4),
        "train_samples_per_s": round(batch_size / seconds, 2),
        "train_step_gflop": round(flops.total / 1e9, 3),
        "train_gflops": round(flops.total / seconds / 1e9, 2),
        "train_mfu": round(flops.total / seconds / (matmul_gflops * 1e9), 4),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params": sum(p.numel() for p in model.parameters()),
    }
