"""What a chat-completions request may hold, and how it is checked before the model sees it.

The server's limits (``ServerSettings``), errors in OpenAI's ``{"error": {...}}`` shape
(``APIError``), the request models (the subset of OpenAI's Chat Completions request that means
something for MiniGPT-v2), and the checks that turn a request body into a ``Conversation``: size,
JSON, text, image, roles, token limits. All of it runs on the event loop, before a job is queued,
so bad input never reaches the model worker (``minigptv2.serve.api``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.errors import ConfigError, ImageError, MiniGPTv2Error, UnknownTaskError
from minigptv2.images import load_image
from minigptv2.prompts import Turn, render

# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """Limits and access control; each default is sized for the shipped model on a small CPU."""

    model_id: str = "minigptv2-shapes"
    api_key: str | None = None
    # OpenAI's own per-image limit is 20 MB; base64 adds a third on top of that.
    max_body_bytes: int = 28 * 1024 * 1024
    # Every image is resized to the vision tower's few hundred pixels, so a larger side only costs
    # memory; the side is checked from the header, before any pixel is decoded.
    max_image_side: int = 4096
    default_max_tokens: int = 128
    max_tokens_limit: int = 512
    # Jobs waiting behind the one being generated; beyond this a request gets 503 at once.
    max_queue: int = 32

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_image_side", "max_tokens_limit", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.default_max_tokens <= self.max_tokens_limit:
            raise ConfigError(
                f"the default max_tokens ({self.default_max_tokens}) must lie between 1 and the "
                f"limit ({self.max_tokens_limit}); lower --max-new-tokens or raise --max-tokens"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty; pass a non-empty --api-key or none at all")


# --------------------------------------------------------------------------------------------------
# Errors in OpenAI's shape
# --------------------------------------------------------------------------------------------------


class APIError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status; never a traceback."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.kind, self.param, self.headers = kind, param, headers

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.as_json()}, status_code=self.status, headers=self.headers
        )


def internal_error() -> APIError:
    """A bug's answer: the exception text can hold paths or data, so it goes to the log only."""
    return APIError(
        500,
        "internal error; the server's log has the details",
        "internal_error",
        kind="server_error",
    )


def from_model_error(error: MiniGPTv2Error) -> APIError:
    """Bad input found by the model's own checks (image, prompt, task token) -> 400."""
    if isinstance(error, ImageError):
        return APIError(400, str(error), "invalid_image", param="messages")
    if isinstance(error, UnknownTaskError):
        return APIError(400, str(error), "unknown_task", param="messages")
    return APIError(400, str(error), "invalid_prompt", param="messages")


# --------------------------------------------------------------------------------------------------
# Request shapes (the subset of OpenAI's that means something for MiniGPT-v2)
# --------------------------------------------------------------------------------------------------


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    # Unknown fields (name, tool_calls, ...) are ignored, as clients send them freely.
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # Absent or 0 means greedy (the reference's evaluation setting); above 0 samples.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1)
    # torch.manual_seed takes any 64-bit value, signed or not, and overflows past that.
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stream: bool = False


@dataclass
class Conversation:
    """A validated request: what the worker needs to generate, and what the response reports."""

    image: Image.Image | None
    turns: list[Turn]
    config: GenerationConfig
    seed: int | None
    prompt_tokens: int


# --------------------------------------------------------------------------------------------------
# Parsing and validation (runs on the event loop, so bad input never reaches the worker)
# --------------------------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise APIError(400, f"invalid Content-Length header {declared!r}", "invalid_request")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(len(body), limit)
    return bytes(body)


def _too_large(size: int, limit: int) -> APIError:
    return APIError(
        413,
        f"the request body is {size:,} bytes, over the server's {limit:,}-byte limit; send a "
        "smaller (or more compressed) image, or start the server with a larger --max-body-mb",
        "request_too_large",
    )


def parse_request(body: bytes) -> ChatRequest:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise APIError(
            400,
            f"the request body is not valid JSON ({error}); send a JSON object with "
            '"messages", as in OpenAI\'s chat completions API',
            "invalid_json",
        ) from None
    except RecursionError:
        raise APIError(
            400,
            "the request body nests JSON arrays or objects too deeply to read; a chat request "
            "needs only a few levels",
            "invalid_json",
        ) from None
    except ValueError:  # Python refuses to convert integers of over 4300 digits
        raise APIError(
            400, "the request body holds a number too long to read", "invalid_json"
        ) from None
    if not isinstance(payload, dict):
        raise APIError(400, "the request body must be a JSON object", "invalid_json")
    where = _lone_surrogate(payload)
    if where is not None:
        raise APIError(
            400,
            f"{where} is not valid Unicode text: it holds a lone surrogate (a \\ud800-\\udfff "
            "escape or its bytes without its pair); send the text as UTF-8",
            "invalid_text",
            param=where,
        )
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as error:
        raise APIError(
            400, _describe(error), "invalid_request", param=_first_param(error)
        ) from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(payload: Any) -> str | None:
    """Where the parsed JSON holds a string with a lone surrogate, or None.

    JSON may escape one (``"\\ud800"``), and ``json.loads`` also lets its UTF-8 bytes through, but
    such a string is not text: the tokenizer cannot take it and a reply echoing it cannot be
    encoded. Walked with a stack, not recursion, so deep nesting costs nothing.
    """
    stack: list[tuple[str, Any]] = [("", payload)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            # isascii() is O(1) on CPython strings, so big base64 images are not scanned.
            if not value.isascii() and _SURROGATE.search(value):
                return path or "body"
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                inner = f"{path}.{key}" if path else str(key)
                if not key.isascii() and _SURROGATE.search(key):
                    return path or "body"
                stack.append((inner, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}", value[index]) for index in reversed(range(len(value))))
    return None


def _describe(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors()[:3]
    ]
    return "invalid request: " + "; ".join(problems)


def _first_param(error: ValidationError) -> str | None:
    errors = error.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else None


def decode_data_url(url: str, max_side: int) -> Image.Image:
    """A ``data:image/...;base64,`` URL -> RGB image; remote and malformed URLs -> 400."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("http", "https"):
        raise APIError(
            400,
            "remote image URLs are not fetched by this server; send the image inline as a data "
            "URL: data:image/png;base64,<base64 of the file>",
            "remote_url_refused",
            param="image_url",
        )
    if scheme != "data":
        raise APIError(
            400,
            f"unsupported image URL scheme {scheme or url[:20]!r}; send a data URL: "
            "data:image/png;base64,<base64 of the file>",
            "invalid_image_url",
            param="image_url",
        )
    header, comma, data = url[len("data:") :].partition(",")
    media_type = header.split(";")[0].strip().lower()
    if not comma or ";base64" not in header.lower():
        raise APIError(
            400,
            "the image data URL must be base64-encoded: data:image/png;base64,<data>",
            "invalid_image_url",
            param="image_url",
        )
    if media_type and not media_type.startswith("image/"):
        raise APIError(
            400,
            f"the uploaded file is {media_type!r}, not an image; send a PNG, JPEG, WebP, GIF or "
            "BMP file",
            "invalid_image",
            param="image_url",
        )
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise APIError(
            400, "the image data URL is not valid base64", "invalid_image_url", param="image_url"
        ) from None
    _check_image_side(raw, max_side)
    try:
        return load_image(raw)
    except ImageError as error:
        raise from_model_error(error) from None


def _check_image_side(raw: bytes, max_side: int) -> None:
    """Refuse an oversized image from its header alone; undecodable bytes are left to load_image."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
    except Exception:  # any decoder complaint: load_image words the error
        return
    if max(width, height) > max_side:
        raise APIError(
            400,
            f"the image is {width}x{height} pixels, over this server's {max_side}-pixel limit per "
            "side; downscale it first (the model resizes every image to a few hundred pixels)",
            "image_too_large",
            param="image_url",
        )


def conversation_from(
    request: ChatRequest, assistant: Assistant, settings: ServerSettings
) -> Conversation:
    """Map OpenAI messages to MiniGPT-v2 turns and decoding settings, checking everything."""
    image: Image.Image | None = None
    turns: list[Turn] = []
    pending_user: list[str] | None = None
    for index, message in enumerate(request.messages):
        # MiniGPT-v2 was trained without a system prompt; an instruction there would change nothing.
        if message.role in ("system", "developer"):
            continue
        text, found = _split_content(message, index, settings.max_image_side)
        if found is not None:
            if message.role != "user" or image is not None:
                raise APIError(
                    400,
                    "send exactly one image, inside a user message; MiniGPT-v2 reads one image "
                    "per conversation",
                    "too_many_images" if image is not None else "invalid_request",
                    param=f"messages.{index}.content",
                )
            image = found
        if message.role == "user":
            # Consecutive user messages are one turn: the template has no slot between them.
            pending_user = [*(pending_user or []), text]
        elif pending_user is None:
            raise APIError(
                400,
                f"messages.{index} is an assistant message with no user message before it",
                "invalid_request",
                param=f"messages.{index}",
            )
        else:
            turns.append(Turn(_join(pending_user), text))
            pending_user = None
    if pending_user is None:
        raise APIError(
            400,
            "the last message must come from the user; there is nothing to answer",
            "invalid_request",
            param="messages",
        )
    prompt = _join(pending_user)
    if not prompt.strip():
        raise APIError(
            400,
            'the prompt is empty; add a text part such as {"type": "text", "text": '
            '"[grounding] describe this image"}',
            "empty_prompt",
            param="messages",
        )
    turns.append(Turn(prompt))
    config = _generation_config(request, settings)
    try:
        encoded = assistant.processor.encode(
            render(turns, image=image is not None, style=assistant.style)
        )
    except MiniGPTv2Error as error:
        raise from_model_error(error) from None
    return Conversation(image, turns, config, request.seed, len(encoded))


def _split_content(message: Message, index: int, max_side: int) -> tuple[str, Image.Image | None]:
    if message.content is None:
        return "", None
    if isinstance(message.content, str):
        return message.content, None
    texts, image = [], None
    for part in message.content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif image is not None:
            raise APIError(
                400,
                "send exactly one image; MiniGPT-v2 reads one image per conversation",
                "too_many_images",
                param=f"messages.{index}.content",
            )
        else:
            image = decode_data_url(part.image_url.url, max_side)
    return _join(texts), image


def _join(texts: Sequence[str]) -> str:
    return " ".join(text.strip() for text in texts if text.strip())


def _generation_config(request: ChatRequest, settings: ServerSettings) -> GenerationConfig:
    max_tokens = request.max_completion_tokens or request.max_tokens or settings.default_max_tokens
    if max_tokens > settings.max_tokens_limit:
        raise APIError(
            400,
            f"max_tokens is {max_tokens}, over this server's limit of "
            f"{settings.max_tokens_limit}; ask for fewer tokens",
            "max_tokens_too_large",
            param="max_tokens",
        )
    sample = bool(request.temperature)
    return GenerationConfig(
        max_new_tokens=max_tokens,
        do_sample=sample,
        temperature=request.temperature if sample else 1.0,
        top_p=request.top_p if request.top_p is not None else 0.9,
    )
