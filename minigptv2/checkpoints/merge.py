"""Fold LoRA into the LLaMA weights for export: W <- W + (alpha / r) * B @ A (spec §8.2).

The merged model is a plain ``LlamaForCausalLM`` inside MiniGPT-v2, runs without ``peft``'s
extra matmuls, and is saved with ``"lora": null`` in its config.
"""

from __future__ import annotations

import dataclasses
import warnings

from minigptv2.errors import CheckpointError
from minigptv2.model.minigptv2 import MiniGPTv2


def merge_lora(model: MiniGPTv2) -> MiniGPTv2:
    """Merge the LoRA adapters into the base q/v weights, in place; returns ``model``.

    Its language weights no longer equal any base file, so it can only be saved in full.
    """
    if model.config.lora is None:
        raise CheckpointError("this model has no LoRA adapters to merge (its config has lora null)")
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers API that transformers 5 renamed; the warning is noise.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        model.language_model = model.language_model.merge_and_unload()
    trainable = dataclasses.replace(model.config.trainable, lora=False)
    model.config = model.config.replace(lora=None, trainable=trainable)
    model.set_trainable(trainable)
    model.weights_source = None
    return model
