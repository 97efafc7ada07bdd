"""Write stand-ins for MiniGPT-v2's three released files, at toy size, with random weights.

    python scripts/make_released_fixture.py OUT_DIR [--tiny] [--seed 0]

writes, laid out and nested exactly as the real downloads (spec §8.1-8.3):

    OUT_DIR/eva_vit_g.pth               plain dict, EVA key names, fp16, pos_embed on a 16x16
                                        grid (224 px; 4x4 with --tiny) and one extra block,
                                        which the loader must drop
    OUT_DIR/Llama-2-7b-chat-hf/         LlamaForCausalLM.save_pretrained (fp16 safetensors),
                                        a 2023-style config.json, a SentencePiece tokenizer.model
                                        trained here and Llama-2's tokenizer_config.json
    OUT_DIR/minigptv2_checkpoint.pth    {"model": {...}}: llama_proj.*, LoRA A/B of q/v in peft
                                        0.2.0 naming (no ".default."), rotary_emb.inv_freq

Without --tiny the files load at the real 448 px (256 image tokens), so ``minigptv2 chat`` works
with its defaults; --tiny (4x4 pretrain grid) is for fast tests that load at 112 px. The ViT
width is 176 = 2 heads of EVA's head dimension 88, so the head count is derived as for ViT-g.
Tests import the functions below (the file is loaded with importlib).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

EVA_FILE = "eva_vit_g.pth"
LLAMA_DIR = "Llama-2-7b-chat-hf"
CHECKPOINT_FILE = "minigptv2_checkpoint.pth"


@dataclass(frozen=True)
class FixtureSizes:
    """Sizes of the stand-in files; the real ones are in the comments (spec §8.2, §8.3)."""

    vision_width: int = 176  # 1408 = 16 heads x 88
    vision_blocks: int = 3  # 40 in eva_vit_g.pth; the model uses all but the last
    vision_mlp: int = 256  # 6144
    patch: int = 14  # 14
    pretrain_grid: int = 16  # 16 (224 px)
    hidden: int = 64  # 4096
    layers: int = 2  # 32
    heads: int = 4  # 32
    intermediate: int = 128  # 11008
    vocab: int = 512  # 32000
    max_positions: int = 1024  # 4096
    lora_rank: int = 8  # 64


SIZES = {
    "small": FixtureSizes(),
    "tiny": FixtureSizes(pretrain_grid=4, max_positions=256),
}


@dataclass(frozen=True)
class ReleasedFixture:
    eva: Path
    llama: Path
    checkpoint: Path


def make_released_fixture(
    out_dir: Path, sizes: FixtureSizes = SIZES["small"], seed: int = 0
) -> ReleasedFixture:
    """Write all three files into ``out_dir``; the same seed gives the same tensors."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fixture = ReleasedFixture(out_dir / EVA_FILE, out_dir / LLAMA_DIR, out_dir / CHECKPOINT_FILE)
    torch.save(eva_state_dict(sizes, seed), fixture.eva)
    write_llama_folder(fixture.llama, sizes, seed + 1)
    torch.save({"model": checkpoint_state_dict(sizes, seed + 2)}, fixture.checkpoint)
    return fixture


# -- eva_vit_g.pth -------------------------------------------------------------------------------


def eva_state_dict(sizes: FixtureSizes, seed: int = 0) -> dict[str, torch.Tensor]:
    """EVA ViT-g key names and nesting, random fp16 values (LayerNorm weights near 1)."""
    generator = torch.Generator().manual_seed(seed)
    width, mlp = sizes.vision_width, sizes.vision_mlp
    shapes = {
        "cls_token": (1, 1, width),
        "pos_embed": (1, 1 + sizes.pretrain_grid**2, width),
        "patch_embed.proj.weight": (width, 3, sizes.patch, sizes.patch),
        "patch_embed.proj.bias": (width,),
    }
    for block in range(sizes.vision_blocks):
        prefix = f"blocks.{block}."
        shapes |= {
            prefix + "norm1.weight": (width,),
            prefix + "norm1.bias": (width,),
            prefix + "attn.q_bias": (width,),
            prefix + "attn.v_bias": (width,),
            prefix + "attn.qkv.weight": (3 * width, width),
            prefix + "attn.proj.weight": (width, width),
            prefix + "attn.proj.bias": (width,),
            prefix + "norm2.weight": (width,),
            prefix + "norm2.bias": (width,),
            prefix + "mlp.fc1.weight": (mlp, width),
            prefix + "mlp.fc1.bias": (mlp,),
            prefix + "mlp.fc2.weight": (width, mlp),
            prefix + "mlp.fc2.bias": (width,),
        }
    return {key: _random(key, shape, generator).half() for key, shape in shapes.items()}


def _random(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    values = torch.randn(shape, generator=generator)
    if "norm" in key and key.endswith("weight"):
        return 1.0 + 0.1 * values
    return 0.05 * values


# -- the LLaMA folder ----------------------------------------------------------------------------


def llama_config_json(sizes: FixtureSizes) -> dict[str, object]:
    """``config.json`` as Llama-2-7b-chat-hf ships it (transformers 4.3x era), at our sizes."""
    return {
        "_name_or_path": "meta-llama/Llama-2-7b-chat-hf",
        "architectures": ["LlamaForCausalLM"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": sizes.hidden,
        "initializer_range": 0.02,
        "intermediate_size": sizes.intermediate,
        "max_position_embeddings": sizes.max_positions,
        "model_type": "llama",
        "num_attention_heads": sizes.heads,
        "num_hidden_layers": sizes.layers,
        "num_key_value_heads": sizes.heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.32.0.dev0",
        "use_cache": True,
        "vocab_size": sizes.vocab,
    }


TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": False,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "padding_side": "right",
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
}


def write_llama_folder(
    folder: Path, sizes: FixtureSizes, seed: int = 1, *, weights: str = "safetensors"
) -> Path:
    """A Hugging Face LLaMA folder. ``weights``: "safetensors" (one file, as
    ``save_pretrained`` writes), "sharded" (several files + ``model.safetensors.index.json``) or
    "bin" (legacy ``pytorch_model.bin`` with the RoPE buffers old transformers saved).
    """
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # "Writing model shards" bars are noise here
    folder.mkdir(parents=True, exist_ok=True)
    config = LlamaConfig(**{k: v for k, v in llama_config_json(sizes).items() if k[0] != "_"})
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(_random(name, tuple(parameter.shape), generator))
    model = model.half()
    if weights == "bin":
        state = dict(model.state_dict())
        for layer in range(sizes.layers):
            state[f"model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = inv_freq(sizes)
        torch.save(state, folder / "pytorch_model.bin")
        model.config.save_pretrained(folder)
    else:
        shard = "40KB" if weights == "sharded" else "50GB"
        model.save_pretrained(folder, max_shard_size=shard)
    (folder / "config.json").write_text(json.dumps(llama_config_json(sizes), indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    train_tokenizer(folder)
    return folder


def inv_freq(sizes: FixtureSizes) -> torch.Tensor:
    """RoPE frequencies 1 / 10000^(2k / head_dim), as transformers 4.30 stored them."""
    head_dim = sizes.hidden // sizes.heads
    return 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))


CORPUS = [
    "[INST] <Img><ImageHere></Img> [/INST] <s> </s> <p> </p> <delim> {<0><12><45><100>}",
    "where is the man in the red shirt ? the dog is on the left of the table",
    "a young man sitting at his desk with a cup of coffee and two sofas",
    "red green blue yellow circle square triangle how many shapes are there",
    "what colour is the object the answer is yes no true false unanswerable 0123456789",
]


def train_tokenizer(folder: Path, vocab_size: int = 400) -> Path:
    """A LLaMA-format SentencePiece ``tokenizer.model`` (BPE, byte fallback, "$$" piece)."""
    from minigptv2.tasks import INSTRUCTION_POOLS
    from minigptv2.tokenizer import train_tokenizer as train_sentencepiece

    lines = CORPUS + [template for pool in INSTRUCTION_POOLS.values() for template in pool]
    return train_sentencepiece(lines * 4, folder, vocab_size=vocab_size).path


# -- minigptv2_checkpoint.pth --------------------------------------------------------------------


def checkpoint_state_dict(
    sizes: FixtureSizes, seed: int = 2, *, peft_default: bool = False
) -> dict[str, torch.Tensor]:
    """``ckpt["model"]``: projector and LoRA (fp32, B non-zero so LoRA matters) and RoPE buffers.

    ``peft_default`` writes LoRA names as peft >= 0.3 does (``lora_A.default.weight``).
    """
    generator = torch.Generator().manual_seed(seed)
    hidden, rank = sizes.hidden, sizes.lora_rank
    adapter = ".default" if peft_default else ""
    projector_in = 4 * sizes.vision_width  # four merged ViT tokens
    state = {
        "llama_proj.weight": 0.05 * torch.randn(hidden, projector_in, generator=generator),
        "llama_proj.bias": 0.05 * torch.randn(hidden, generator=generator),
    }
    for layer in range(sizes.layers):
        prefix = f"llama_model.base_model.model.model.layers.{layer}.self_attn."
        for module in ("q_proj", "v_proj"):
            state[f"{prefix}{module}.lora_A{adapter}.weight"] = torch.randn(
                rank, hidden, generator=generator
            ) / math.sqrt(hidden)
            state[f"{prefix}{module}.lora_B{adapter}.weight"] = 0.05 * torch.randn(
                hidden, rank, generator=generator
            )
        state[f"{prefix}rotary_emb.inv_freq"] = inv_freq(sizes)
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--tiny", action="store_true", help="4x4 pretrain grid; load at 112 px")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fixture = make_released_fixture(
        args.out_dir, SIZES["tiny" if args.tiny else "small"], args.seed
    )
    image_size = 112 if args.tiny else 448
    print(f"--eva {fixture.eva} --llama {fixture.llama} --checkpoint {fixture.checkpoint}")
    print(f"(image size {image_size} px)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
