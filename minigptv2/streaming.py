"""Generated ids -> text deltas, so that the deltas of an answer add up to its final text.

Decoding one token at a time is wrong for SentencePiece: a piece's leading ``▁`` is a space only
after other text, and byte-fallback pieces (``<0xE2>`` …) make a character only together. So the
whole answer so far is decoded at every step and only its settled part is released: text that a
later token can no longer change. Held back are a trailing incomplete character (decoded as
U+FFFD) and trailing whitespace (the final answer is stripped, and a space may still be followed by
more text). ``finish`` releases the rest, so the deltas always join to ``Processor.decode``'s text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class TextDeltas:
    """Feed ids as they are generated; get back the new settled text each time."""

    def __init__(self, decode: Callable[[Sequence[int]], str], eos_id: int) -> None:
        self._decode = decode
        self._eos_id = eos_id
        self._ids: list[int] = []
        self._sent = ""
        self.done = False

    def push(self, token: int) -> str:
        """Add one generated id; returns the text it settled ("" if none yet)."""
        if self.done:
            return ""
        if token == self._eos_id:
            self.done = True
            return ""
        self._ids.append(token)
        settled = self._text().rstrip().rstrip(REPLACEMENT).rstrip()
        return self._release(settled)

    def finish(self) -> str:
        """All remaining text, stripped as the final answer is."""
        self.done = True
        return self._release(self._text().rstrip())

    @property
    def text(self) -> str:
        """The text released so far."""
        return self._sent

    def _text(self) -> str:
        return self._decode(self._ids).lstrip()

    def _release(self, settled: str) -> str:
        # A settled prefix only grows; if a decoder ever rewrote earlier text, send nothing rather
        # than contradict what the consumer already has (``finish`` then carries the difference).
        if len(settled) <= len(self._sent) or not settled.startswith(self._sent):
            return ""
        delta = settled[len(self._sent) :]
        self._sent = settled
        return delta
