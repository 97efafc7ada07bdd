"""MiniGPT-v2's multi-task conversation set (stage 3, spec §4.1).

``multitask_conversation.json`` uses LLaVA's conversation layout (``{"id", "conversations"}``)
over COCO train2014 images ``COCO_train2014_{id}.jpg``; its questions may carry task tokens, so a
conversation can mix ``[refer]``, ``[vqa]`` and free-form turns about one image.
"""

from __future__ import annotations

from pathlib import Path

from minigptv2.data.llava import LLaVA


class MultitaskConversation(LLaVA):
    """Read exactly as LLaVA's conversation kind; only the source name differs."""

    def __init__(self, annotation: str | Path, images: str | Path) -> None:
        super().__init__(annotation, images, "conversation")
        self.source = "multitask_conversation"
