"""The chat template: how a conversation becomes the text MiniGPT-v2 reads (spec §1.11–1.14, §2).

The paper's template is ``[INST] <Img><ImageFeature></Img> [task] instruction [/INST]``
(LLaMA-2-chat style, no system prompt). A rendered conversation is a list of ``Piece``s; each piece
is tokenised on its own (see ``processor.py``), which reproduces the reference's segment-wise
tokenisation, and only the assistant pieces are supervised.

The released weights were trained and evaluated on two slightly different renderings. Both are kept
as named styles so the model sees exactly the token sequences behind the published numbers:

* ``TRAIN_STYLE`` — the training datasets end every instruction with a space and the template adds
  another, so two spaces precede ``[/INST]`` (spec §10.2); the sequence has one BOS.
* ``EVAL_STYLE`` — the evaluation scripts and the demo render ``"<s>[INST] … [/INST]"`` with one
  space, and the tokenizer adds its own BOS in front of the literal ``<s>``, so the sequence starts
  with two BOS tokens (spec §10.1).

Earlier answers are always rendered as the model was trained on them (``answer</s>``), not as the
reference demo stores them (it kept ``"</s>"`` instead of the answer, spec §10.12).

A language model other than LLaMA-2 may use its own chat template instead (``ChatTemplate``,
``chat_format: native`` in the model config); the task token, image slot and box grammar are the
same text inside its user turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from minigptv2.constants import BOS, EOS, IMAGE_CLOSE, IMAGE_OPEN, IMAGE_PLACEHOLDER
from minigptv2.errors import PromptError
from minigptv2.tasks import task_of

if TYPE_CHECKING:
    from minigptv2.config import MiniGPTv2Config
    from minigptv2.tokenizer import AnyTokenizer, HFTokenizer

INST_OPEN = "[INST] "
INST_CLOSE = " [/INST]"
STOP_STRING = EOS
IMAGE_SLOT = f"{IMAGE_OPEN}{IMAGE_PLACEHOLDER}{IMAGE_CLOSE}"

_RESERVED = (IMAGE_PLACEHOLDER, IMAGE_OPEN, IMAGE_CLOSE)


@dataclass(frozen=True)
class PromptStyle:
    """A named rendering of the template; see the module docstring for why there are two."""

    name: str
    # Dataset instructions end in a space, which the template's own space doubles.
    trailing_space: bool
    # The prompt text starts with a literal "<s>", which doubles the tokenizer's automatic BOS.
    literal_bos: bool

    def render(self, turns: Sequence[Turn], *, image: bool = True) -> list[Piece]:
        """``[INST] <Img><ImageHere></Img> [task] message [/INST]`` per turn, ``answer</s>``."""
        _check_turns(turns)
        pieces: list[Piece] = []
        for index, turn in enumerate(turns):
            # Not stripped: some reference templates end in a space on purpose (spec §4.2).
            message = turn.user
            if index == 0 and image:
                message = f"{IMAGE_SLOT} {message}" if message else IMAGE_SLOT
            if self.trailing_space:
                message += " "
            # Later turns always restart with <s> (it was in the training data); the first turn
            # only in the evaluation style, where it is the reference's literal-<s> quirk.
            opener = BOS if (index > 0 or self.literal_bos) else ""
            pieces.append(Piece(f"{opener}{INST_OPEN}{message}{INST_CLOSE}"))
            if turn.assistant is not None:
                pieces.append(Piece(turn.assistant + STOP_STRING, supervised=True))
        return pieces


TRAIN_STYLE = PromptStyle("train", trailing_space=True, literal_bos=False)
EVAL_STYLE = PromptStyle("eval", trailing_space=False, literal_bos=True)
STYLES: dict[str, PromptStyle] = {style.name: style for style in (TRAIN_STYLE, EVAL_STYLE)}


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's message and, except for the turn being generated, the answer."""

    user: str
    assistant: str | None = None


@dataclass(frozen=True)
class Piece:
    """A span of prompt text that is tokenised on its own; ``supervised`` pieces carry the loss."""

    text: str
    supervised: bool = False


def render(
    turns: Sequence[Turn], *, image: bool = True, style: ChatFormat = TRAIN_STYLE
) -> list[Piece]:
    """Render a conversation into pieces, image slot inside the first user message.

    Every turn but the last must have an answer. If the last turn has an answer the result is a
    training example; if not, it is a prompt that ends where generation starts (``[/INST]``).
    ``style`` is one of the paper template's ``STYLES`` or a language model's ``ChatTemplate``.
    """
    return style.render(turns, image=image)


def render_prompt(
    instruction: str, *, image: bool = True, style: PromptStyle = EVAL_STYLE
) -> list[Piece]:
    """The single-turn generation prompt: ``<s>[INST] <Img><ImageHere></Img> [vqa] q [/INST]``."""
    return render([Turn(instruction)], image=image, style=style)


class ChatTemplate:
    """A language model's own chat template (its tokenizer folder's Jinja template), with
    MiniGPT-v2's interface inside the user turn: ``<Img><ImageHere></Img> [task] message``.

    The conversation is rendered by the template with a sentinel in place of every message, and
    cut at the sentinels: template text and user messages are unsupervised pieces; each answer
    plus the template's end-of-answer token (``tokenizer.stop_text``: ``<|im_end|>``, ``<|end|>``,
    ``</s>``) is a supervised piece, so the model learns to stop there and generation stops
    there. A BOS the template writes itself is left out: the processor starts every sequence
    with the tokenizer's BOS, so it appears once either way.
    """

    name = "native"

    def __init__(self, tokenizer: HFTokenizer) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise PromptError(
                f"the tokenizer in {tokenizer.path} has no chat template; use the paper's "
                "template (chat_format 'minigptv2') or add one to its tokenizer_config.json"
            )
        self.tokenizer = tokenizer

    def render(self, turns: Sequence[Turn], *, image: bool = True) -> list[Piece]:
        _check_turns(turns)
        messages, contents = [], []
        for index, turn in enumerate(turns):
            user = turn.user
            if index == 0 and image:
                user = f"{IMAGE_SLOT} {user}" if user else IMAGE_SLOT
            for role, content in (("user", user), ("assistant", turn.assistant)):
                if content is not None:
                    messages.append({"role": role, "content": _sentinel(len(contents))})
                    contents.append((role, content))
        text = self.tokenizer.render_chat(messages, generation=turns[-1].assistant is None)
        bos = self.tokenizer.bos_text
        if bos and text.startswith(bos):
            text = text[len(bos) :]
        stop = self.tokenizer.stop_text
        pieces: list[Piece] = []
        pending = ""  # unsupervised text waiting to become a piece
        for index, (role, content) in enumerate(contents):
            before, _, text = text.partition(_sentinel(index))
            if role == "user":
                pending += before + content
                continue
            pieces += [Piece(pending + before)] if pending + before else []
            end = text.find(stop)
            if end < 0:
                raise PromptError(
                    f"the chat template writes no {stop!r} after an answer; it cannot be used "
                    "for training (choose chat_format 'minigptv2')"
                )
            pieces.append(Piece(content + text[: end + len(stop)], supervised=True))
            pending, text = "", text[end + len(stop) :]
        if pending + text:
            pieces.append(Piece(pending + text))
        return pieces


ChatFormat = PromptStyle | ChatTemplate


def chat_format(config: MiniGPTv2Config, tokenizer: AnyTokenizer, *, training: bool) -> ChatFormat:
    """How ``config``'s model reads conversations: the one place that reads ``chat_format``.

    "minigptv2": the paper's template, ``TRAIN_STYLE`` for training and ``prompt_style`` for
    generation; "native": the tokenizer folder's own chat template, for both.
    """
    if config.chat_format == "native":
        return ChatTemplate(tokenizer)
    return TRAIN_STYLE if training else STYLES[config.prompt_style]


def _sentinel(index: int) -> str:
    return f"\x00{index}\x00"


def _check_turns(turns: Sequence[Turn]) -> None:
    if not turns:
        raise PromptError("a conversation needs at least one turn; got none")
    for index, turn in enumerate(turns):
        _check_user_text(turn.user)
        if turn.assistant is None and index != len(turns) - 1:
            raise PromptError(
                f"turn {index + 1} of {len(turns)} has no answer; only the last turn may be open"
            )


def to_text(pieces: Sequence[Piece]) -> str:
    """The pieces joined into one string, for logging and for golden tests."""
    return "".join(piece.text for piece in pieces)


def _check_user_text(text: str) -> None:
    if not isinstance(text, str):
        raise PromptError(f"a user message must be a string, got {type(text).__name__}")
    for reserved in _RESERVED:
        if reserved in text:
            raise PromptError(
                f"the message contains the reserved marker {reserved!r}; the template adds the "
                "image slot itself, so remove it from the text and pass the image separately"
            )
    task_of(text)  # raises UnknownTaskError for a misspelt identifier


# A piece ends where the template closes a user message or an answer ends.
_PIECE_END = re.compile(f"{re.escape(INST_CLOSE)}|{re.escape(STOP_STRING)}")


def split_rendered(text: str) -> list[Piece]:
    """A rendered conversation (``to_text``) split back into the pieces ``render`` made, so that
    tokenising it gives the same ids; answers (ending in ``</s>``) are the supervised pieces.

    For text that comes back as one string, e.g. from a chat-template call with ``tokenize=False``.
    """
    pieces, start = [], 0
    for match in _PIECE_END.finditer(text):
        pieces.append(Piece(text[start : match.end()], supervised=match.group() == STOP_STRING))
        start = match.end()
    if start < len(text):
        pieces.append(Piece(text[start:]))
    return pieces
