"""Errors a user can act on.

Every error raised for bad input derives from ``MiniGPTv2Error`` and says what went wrong, the
offending value and how to fix it, so the CLI can print the message alone instead of a traceback.
"""

from __future__ import annotations


class MiniGPTv2Error(Exception):
    """Base class for errors caused by inputs, files or configuration (not by bugs)."""


class ConfigError(MiniGPTv2Error, ValueError):
    """A configuration value is invalid or inconsistent."""


class ImageError(MiniGPTv2Error, ValueError):
    """An image cannot be read or has an unusable size."""


class PromptError(MiniGPTv2Error, ValueError):
    """A prompt or conversation is malformed, too long, or uses an unknown task token."""


class UnknownTaskError(PromptError):
    """A ``[task]`` identifier is not one of MiniGPT-v2's six."""


class DataError(MiniGPTv2Error, ValueError):
    """A dataset file or one of its rows is missing, malformed or inconsistent."""


class ImageSlotMismatchError(MiniGPTv2Error, ValueError):
    """The number of image placeholder positions does not match the image features given."""


class CheckpointError(MiniGPTv2Error, ValueError):
    """A checkpoint file is unsafe, unreadable, or does not match the model."""
