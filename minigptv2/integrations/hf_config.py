"""``MiniGPTv2HFConfig``: our ``config.json`` as transformers' ``AutoConfig`` reads it.

The keys are ``MiniGPTv2Config``'s (``minigptv2/config.py``) with ``"model_type": "minigptv2"``
(``checkpoints/pretrained.py``). No field is declared a second time here, so the two cannot drift:
transformers keeps the values of ``config.json`` as attributes and ``to_minigptv2()`` builds the
typed config from them, with its validation. ``dtype`` is transformers' own field and means the
same (the dtype of the frozen weights), as a ``torch.dtype`` instead of our string.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transformers.configuration_utils import PreTrainedConfig

from minigptv2.config import MiniGPTv2Config
from minigptv2.constants import MODEL_TYPE

_FIELDS = tuple(field.name for field in dataclasses.fields(MiniGPTv2Config))


class MiniGPTv2HFConfig(PreTrainedConfig):
    model_type = MODEL_TYPE

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if getattr(self, "vision", None) is not None:
            self.to_minigptv2()  # a bad config.json fails here, with our message

    def to_minigptv2(self) -> MiniGPTv2Config:
        """The typed config the model is built from."""
        data = {name: getattr(self, name) for name in _FIELDS if hasattr(self, name)}
        data.pop("dtype", None)
        if self.dtype is not None:
            data["dtype"] = str(self.dtype).removeprefix("torch.")  # torch.float32 -> "float32"
        return MiniGPTv2Config.from_dict(data)

    @classmethod
    def from_minigptv2(cls, config: MiniGPTv2Config, **kwargs: Any) -> MiniGPTv2HFConfig:
        return cls(**config.to_dict(), **kwargs)
