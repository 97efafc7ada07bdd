"""``MiniGPTv2ForConditionalGeneration``: our ``MiniGPTv2`` behind transformers' model interface.

A thin wrapper, not a second implementation: ``from_pretrained`` is our strict loader
(``checkpoints.load_pretrained``, so a converted release loads exactly as ``minigptv2 --model``
loads it, trainable-only folders on their base included), ``generate`` is ``MiniGPTv2.generate``
(the decoding ``Assistant`` uses), ``save_pretrained`` is our save, and ``forward`` is
``MiniGPTv2.forward``.

``generate`` returns the new tokens only, (B, new), as ``MiniGPTv2.generate`` does, so
``processor.batch_decode(model.generate(**inputs))`` is the answer; decoder-only transformers
models return the prompt too. The image-text-to-text pipeline handles both.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers.generation import GenerationConfig, GenerationMixin
from transformers.generation.utils import GenerateDecoderOnlyOutput
from transformers.modeling_utils import PreTrainedModel

from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.integrations.hf_config import MiniGPTv2HFConfig
from minigptv2.tokenizer import Tokenizer

if TYPE_CHECKING:
    from minigptv2.model import MiniGPTv2

# Greedy, 128 new tokens: Assistant's defaults (assistant.GenerationConfig), restated here because
# this module is imported while transformers itself is loading (registration.py) and must not
# import the model code; tests/integrations/test_hf.py checks the two agree.
MAX_NEW_TOKENS = 128

# from_pretrained arguments about where files come from; our folders are local, so they are moot.
_HUB_ARGUMENTS = {
    "_from_auto",
    "_from_pipeline",
    "cache_dir",
    "code_revision",
    "force_download",
    "local_files_only",
    "proxies",
    "revision",
    "token",
    "trust_remote_code",
    "use_safetensors",
    "low_cpu_mem_usage",
}
# Generation settings MiniGPTv2.generate implements; any other one set is refused, not ignored.
_SUPPORTED = {
    "max_new_tokens",
    "max_length",
    "do_sample",
    "temperature",
    "top_p",
    "repetition_penalty",
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "return_dict_in_generate",
    "transformers_version",
}


class MiniGPTv2ForConditionalGeneration(PreTrainedModel, GenerationMixin):
    config_class = MiniGPTv2HFConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")

    def __init__(
        self,
        config: MiniGPTv2HFConfig,
        model: MiniGPTv2 | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        from minigptv2.model import MiniGPTv2

        super().__init__(config)
        self.model = model if model is not None else MiniGPTv2(config.to_minigptv2())
        self.tokenizer = tokenizer  # kept for save_pretrained: our folders hold tokenizer.model
        self.generation_config = _generation_defaults(tokenizer)
        self.post_init()

    def init_weights(self) -> None:
        # MiniGPTv2's constructors initialise it, and from_pretrained fills it with loaded
        # weights; transformers' initialisation pass would overwrite those.
        return

    # -- loading and saving --------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *model_args: Any,
        config: Any = None,
        dtype: Any = None,
        torch_dtype: Any = None,
        device_map: Any = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> MiniGPTv2ForConditionalGeneration:
        """One of our folders (``config.json``, ``model.safetensors``, ``tokenizer.model``),
        loaded strictly by ``checkpoints.load_pretrained``.

        ``dtype`` overrides the frozen weights' saved dtype (float32 or bfloat16; "auto" keeps
        it); ``device_map`` may name one device. ``config`` is ignored: the folder's own is used.
        """
        from minigptv2.checkpoints.pretrained import load_pretrained

        if (kwargs.pop("adapter_kwargs", None) or {}).get("_adapter_model_path"):
            raise CheckpointError(
                f"{pretrained_model_name_or_path} holds a PEFT adapter; minigptv2 folders carry "
                "their LoRA in model.safetensors (see `minigptv2 convert`)"
            )
        unknown = sorted(set(kwargs) - _HUB_ARGUMENTS)
        if model_args or unknown:
            raise TypeError(
                f"{cls.__name__}.from_pretrained does not take {unknown or list(model_args)}; it"
                " accepts dtype, device_map and strict (and ignores hub arguments)"
            )
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            raise CheckpointError(
                f"{folder} is not a folder; minigptv2 loads local folders only (ours, written by"
                " save_pretrained or `minigptv2 convert`), nothing is downloaded"
            )
        network, tokenizer = load_pretrained(
            folder, strict=strict, dtype=_dtype_name(dtype if dtype is not None else torch_dtype)
        )
        hf_config = MiniGPTv2HFConfig.from_minigptv2(network.config, name_or_path=str(folder))
        wrapper = cls(hf_config, network, tokenizer).eval()
        device = _device(device_map)
        return wrapper if device is None else wrapper.to(device)

    def save_pretrained(
        self, save_directory: str | Path, *, full: bool = False, **kwargs: Any
    ) -> None:
        """Our format (``checkpoints.save_pretrained``), which ``from_pretrained``, ``AutoModel…``
        and ``minigptv2 --model`` all load. ``full=True`` saves every weight; by default a model
        that trains only its projector and LoRA saves those on top of its recorded base."""
        from minigptv2.checkpoints.pretrained import save_pretrained

        if kwargs.get("push_to_hub"):
            raise CheckpointError("minigptv2 does not push to the hub; save locally and upload")
        if kwargs.get("safe_serialization") is False:
            raise CheckpointError("minigptv2 saves safetensors only (safe_serialization=True)")
        if self.tokenizer is None:
            raise CheckpointError(
                "this model has no tokenizer on record (it was built from a config), and our "
                "folders hold tokenizer.model; load it with from_pretrained, or build it with "
                "MiniGPTv2ForConditionalGeneration(config, model, tokenizer)"
            )
        save_pretrained(self.model, self.tokenizer, save_directory, full=full)

    # -- tensors -------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> Any:
        """``MiniGPTv2.forward``: ``.logits`` (B, T, vocab), or with ``labels`` the answer loss."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.model(
            input_ids,
            attention_mask,
            labels=labels,
            pixel_values=pixel_values,
            position_ids=position_ids,
        )

    @torch.no_grad()
    def generate(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        **kwargs: Any,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput:
        """Left-padded prompts from ``MiniGPTv2Processor`` -> (B, new tokens) ids.

        Settings come from ``generation_config`` (default: the model's, greedy with 128 new
        tokens as ``Assistant``) updated by keyword arguments. Greedy or sampling with
        temperature, top-p and repetition penalty; beams and other strategies are refused.
        """
        from minigptv2.assistant import GenerationConfig as Decoding

        settings = copy.deepcopy(generation_config or self.generation_config)
        unused = settings.update(**kwargs)
        if unused:
            raise TypeError(f"generate() got unexpected arguments {sorted(unused)}")
        changed = set(settings.to_diff_dict()) - _SUPPORTED
        if changed:
            raise ConfigError(
                f"MiniGPT-v2 decodes greedily or by sampling with temperature/top_p/"
                f"repetition_penalty; these settings are not supported: {sorted(changed)}"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        decoding = Decoding(
            max_new_tokens=_max_new_tokens(settings, input_ids.shape[1]),
            do_sample=bool(settings.do_sample),
            temperature=1.0 if settings.temperature is None else settings.temperature,
            top_p=Decoding.top_p if settings.top_p is None else settings.top_p,
            repetition_penalty=settings.repetition_penalty or 1.0,
        )
        ids = self.model.generate(
            input_ids.to(self.device),
            attention_mask.to(self.device),
            None if pixel_values is None else pixel_values.to(self.device),
            eos_token_id=_single(settings.eos_token_id, "eos_token_id"),
            pad_token_id=settings.pad_token_id,
            **decoding.kwargs(),
        )
        if settings.return_dict_in_generate:
            return GenerateDecoderOnlyOutput(sequences=ids)
        return ids


def _generation_defaults(tokenizer: Tokenizer | None) -> GenerationConfig:
    """Greedy with ``Assistant``'s defaults, stopping at the tokenizer's ``</s>``."""
    settings = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    if tokenizer is not None:
        settings.bos_token_id = tokenizer.bos_id
        settings.eos_token_id = tokenizer.eos_id
        settings.pad_token_id = tokenizer.pad_id
    else:  # LLaMA's ids (MiniGPTv2.generate's defaults)
        settings.eos_token_id, settings.pad_token_id = 2, 0
    return settings


def _max_new_tokens(settings: GenerationConfig, prompt_length: int) -> int:
    if settings.max_new_tokens is not None:
        return settings.max_new_tokens
    if settings.max_length is not None:
        return max(1, settings.max_length - prompt_length)
    return MAX_NEW_TOKENS


def _single(value: int | list[int] | None, name: str) -> int:
    if isinstance(value, list):
        if len(value) != 1:
            raise ConfigError(f"MiniGPT-v2 stops at one {name}, got {value}")
        value = value[0]
    if value is None:
        raise ConfigError(f"generate() needs {name}; pass the tokenizer's (processor.tokenizer)")
    return int(value)


def _dtype_name(dtype: Any) -> str | None:
    """transformers' dtype argument -> the name our loader takes (None keeps the saved one)."""
    if dtype is None or dtype == "auto":
        return None
    name = str(dtype).removeprefix("torch.")
    if name not in ("float32", "bfloat16"):
        raise ConfigError(f"dtype {dtype!r} is not supported; use float32, bfloat16 or 'auto'")
    return name


def _device(device_map: Any) -> torch.device | None:
    if device_map is None or device_map == "auto":
        return None
    if isinstance(device_map, (str, int, torch.device)):
        return torch.device(device_map)
    raise ConfigError(
        f"device_map {device_map!r} would split the model; pass one device (e.g. 'cpu') instead"
    )
