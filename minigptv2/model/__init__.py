"""The MiniGPT-v2 network: vision encoder, projector, language model (tensors only, no I/O)."""

from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.model.projector import Projector
from minigptv2.model.vision import EvaViT, VisionConfig, resample_pos_embed

__all__ = ["EvaViT", "MiniGPTv2", "Projector", "VisionConfig", "resample_pos_embed"]
