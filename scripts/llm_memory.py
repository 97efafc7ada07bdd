"""Training memory of each configs/llm stage at 7B / 3B / 1B, from parameter counts (no download).

    python scripts/llm_memory.py        # prints the README's table

Per GPU, data-parallel (each rank a full replica; FSDP divides the weight terms by the ranks):

    weights      2 B x (ViT + LLM)                       frozen, bf16
    trainable   16 B x trainable                         fp32 weight 4 + grad 4 + AdamW m, v 8
    activations 34 B x b x s x h x L                     saved for the backward pass
    logits       8 B x b x a x V                         fp32 logits and their gradient

Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models", 34·s·b·h bytes per layer in 16-bit with no attention-score term, as with
SDPA/flash attention): an upper bound here, since frozen linear layers need not keep their
inputs. The projector's gradient flows back through every LM layer, so stage 1 (projector only)
stores them too. With gradient checkpointing (``gradient_checkpointing: true``) only each layer's
input (2·b·s·h·L) plus one layer's 34·b·s·h are kept. The frozen ViT runs under no_grad. Logits
are computed for the ``a`` answer tokens only (``model/minigptv2.py``). CUDA context, allocator
slack and data workers come on top (a few GB).
"""

from __future__ import annotations

from dataclasses import dataclass

from minigptv2.config import LanguageConfig, Trainable, get_preset
from minigptv2.model.summary import component_summary

GB = 1e9

# Public configs (config.json) of one model per size; only their sizes matter here.
LANGUAGE_MODELS = {
    "7B LLaMA-2-7b-chat": LanguageConfig(),
    "3B Qwen2.5-3B-Instruct": LanguageConfig(
        vocab_size=151936,
        hidden_size=2048,
        num_layers=36,
        num_heads=16,
        intermediate_size=11008,
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        max_position_embeddings=32768,
        family="qwen2",
        hf={"num_key_value_heads": 2, "tie_word_embeddings": True},
    ),
    "1B TinyLlama-1.1B-Chat": LanguageConfig(
        hidden_size=2048,
        num_layers=22,
        num_heads=32,
        intermediate_size=5632,
        max_position_embeddings=2048,
        hf={"num_key_value_heads": 4},
    ),
}


@dataclass(frozen=True)
class Stage:
    name: str
    trainable: Trainable
    batch: int  # per GPU
    length: int  # tokens per sequence: 256 image tokens + text
    answer: int  # answer tokens per sequence


# configs/llm: batch per GPU as configured; lengths are typical MiniGPT-v2 rows (stage 3's
# conversations are longer).
STAGES = (
    Stage("stage 1 (projector)", Trainable(lora=False), 12, 320, 30),
    Stage("stage 2 (projector + LoRA)", Trainable(), 12, 320, 30),
    Stage("stage 3 (projector + LoRA)", Trainable(), 6, 512, 120),
)


def estimate(language: LanguageConfig, stage: Stage, checkpointing: bool) -> dict[str, float]:
    config = get_preset("minigptv2-7b").replace(language=language, trainable=stage.trainable)
    counts = component_summary(config)
    frozen = sum(row["params"] for row in counts.values() if not row["trainable"])
    trainable = sum(row["params"] for row in counts.values() if row["trainable"])
    b, s, h, layers = stage.batch, stage.length, language.hidden_size, language.num_layers
    per_layer = 34 * b * s * h
    activations = (2 * b * s * h * layers + per_layer) if checkpointing else per_layer * layers
    logits = 8 * b * stage.answer * language.vocab_size
    parts = {
        "weights": 2 * frozen,
        "trainable": 16 * trainable,
        "activations": activations,
        "logits": logits,
    }
    return {name: value / GB for name, value in parts.items()} | {
        "total": sum(parts.values()) / GB,
        "frozen_params": frozen,
        "trainable_params": trainable,
    }


def main() -> None:
    print("| LM | stage | b x s | frozen / trainable params | weights | trainable state |"
          " activations | total | with checkpointing |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name, language in LANGUAGE_MODELS.items():
        for stage in STAGES:
            plain = estimate(language, stage, checkpointing=False)
            ckpt = estimate(language, stage, checkpointing=True)
            print(
                f"| {name} | {stage.name} | {stage.batch} x {stage.length} |"
                f" {plain['frozen_params'] / 1e9:.2f}B / {plain['trainable_params'] / 1e6:.0f}M |"
                f" {plain['weights']:.1f} GB | {plain['trainable']:.2f} GB |"
                f" {plain['activations'] + plain['logits']:.1f} GB | **{plain['total']:.1f} GB** |"
                f" {ckpt['total']:.1f} GB |"
            )


if __name__ == "__main__":
    main()
