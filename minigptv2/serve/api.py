"""An OpenAI-compatible HTTP server: ``POST /v1/chat/completions``, ``GET /v1/models``.

Requests and responses follow OpenAI's Chat Completions shapes, so existing clients work
unchanged. The image travels inline as an ``image_url`` content part holding a ``data:`` URL;
remote URLs are refused, because a server that fetches arbitrary addresses can be turned against
its own network. Each answer's message also carries ``grounding``: the phrases and pixel boxes
parsed from the text (``minigptv2.boxes``); a stream sends it in its last chunk's ``delta``.

One worker thread owns the model and takes jobs from a bounded queue: requests are validated on
the event loop, queued, and answered in order; a full queue is refused with 503 rather than
dropped. Streaming (``"stream": true``) sends ``chat.completion.chunk`` server-sent events and
stops generating when the client goes away. Every bad input gets a 4xx JSON error in OpenAI's
``{"error": {"message", "type", "param", "code"}}`` shape and the server keeps serving.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import io
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from minigptv2.assistant import Answer, Assistant, GenerationConfig
from minigptv2.boxes import parse_grounding
from minigptv2.errors import ConfigError, ImageError, MiniGPTv2Error, UnknownTaskError
from minigptv2.images import load_image
from minigptv2.prompts import Turn, render

logger = logging.getLogger("minigptv2.serve.api")


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


def _from_model_error(error: MiniGPTv2Error) -> APIError:
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
    seed: int | None = None
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
    if not isinstance(payload, dict):
        raise APIError(400, "the request body must be a JSON object", "invalid_json")
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as error:
        raise APIError(
            400, _describe(error), "invalid_request", param=_first_param(error)
        ) from None


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
        raise _from_model_error(error) from None


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
        raise _from_model_error(error) from None
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


# --------------------------------------------------------------------------------------------------
# The model worker: one thread, one bounded queue
# --------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One request's work. Events go back to the request's event loop as they happen:
    ``("delta", str)`` while streaming, then ``("done", Answer)`` or ``("error", exception)``."""

    conversation: Conversation
    stream: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, kind: str, value: Any) -> None:
        # A closed loop means the server is shutting down and nobody waits for the event.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class ModelWorker:
    """Runs every generation on one thread, so the model never sees two requests at once."""

    def __init__(self, assistant: Assistant, max_queue: int) -> None:
        self.assistant = assistant
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.completed = 0
        self.cancelled = 0
        self._thread = threading.Thread(target=self._run, name="minigptv2-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # The sentinel must get in even when the queue is full, so make room by refusing waiters.
        while True:
            try:
                self.jobs.put_nowait(None)
                break
            except queue.Full:
                self._refuse(self.jobs.get_nowait())
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise APIError(
                503,
                f"the server is busy ({self.jobs.maxsize} requests already waiting); retry shortly",
                "server_overloaded",
                kind="server_error",
                headers={"Retry-After": "1"},
            ) from None

    @property
    def waiting(self) -> int:
        return self.jobs.qsize()

    def _refuse(self, job: Job | None) -> None:
        if job is not None:
            job.emit("error", APIError(503, "the server is shutting down", "shutting_down"))

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.cancelled.is_set():  # the client left while the job was waiting
                self.cancelled += 1
                continue
            try:
                answer = self._stream(job) if job.stream else self._generate(job)
            except MiniGPTv2Error as error:
                job.emit("error", _from_model_error(error))
            except Exception as error:  # a bug: log it here, answer 500, keep serving
                logger.exception("generation failed")
                job.emit("error", APIError(500, f"internal error: {error}", "internal_error",
                                           kind="server_error"))  # fmt: skip
            else:
                if answer is None:
                    self.cancelled += 1
                else:
                    self.completed += 1
                    job.emit("done", answer)

    def _seed(self, job: Job) -> None:
        import torch

        if job.conversation.seed is not None:
            torch.manual_seed(job.conversation.seed)

    def _generate(self, job: Job) -> Answer:
        self._seed(job)
        conversation = job.conversation
        return self.assistant.generate(
            [conversation.image], [conversation.turns], conversation.config
        )[0]

    def _stream(self, job: Job) -> Answer | None:
        """Emit text deltas; stop early (None) once the client has gone."""
        self._seed(job)
        conversation = job.conversation
        pieces: list[str] = []
        deltas = _deltas(self.assistant, conversation)
        try:
            for delta in deltas:
                if job.cancelled.is_set():
                    return None
                pieces.append(delta)
                job.emit("delta", delta)
        finally:
            close = getattr(deltas, "close", None)
            if close is not None:
                close()  # ends the generator's generation early instead of running to the end
        text = "".join(pieces).strip()
        image = conversation.image
        grounding = parse_grounding(text, *image.size) if image is not None else None
        return Answer(text, grounding) if grounding is not None else Answer(text)


def _deltas(assistant: Assistant, conversation: Conversation) -> Iterator[str]:
    """Text deltas from ``Assistant.stream``; a whole answer as one delta if it has none."""
    stream = getattr(assistant, "stream", None)
    if stream is None:
        answer = assistant.generate([conversation.image], [conversation.turns], conversation.config)
        return iter([answer[0].text])
    return stream(conversation.image, conversation.turns, conversation.config)


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------


def completion_tokens(assistant: Assistant, text: str) -> int:
    # Re-encoding the answer gives the token count to within a token or two of what was generated
    # (the decoder strips specials and spaces); usage is informational, so this is good enough.
    return len(assistant.processor.tokenizer.encode(text)) if text else 0


def completion_body(
    answer: Answer, conversation: Conversation, assistant: Assistant, model_id: str
) -> dict[str, Any]:
    grounding = answer.grounding.to_json()
    generated = completion_tokens(assistant, answer.text)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "grounding": grounding},
                "finish_reason": _finish_reason(generated, conversation.config),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": conversation.prompt_tokens,
            "completion_tokens": generated,
            "total_tokens": conversation.prompt_tokens + generated,
        },
    }


def _finish_reason(generated: int, config: GenerationConfig) -> str:
    return "length" if generated >= config.max_new_tokens else "stop"


def _chunk(
    completion_id: str, created: int, model_id: str, delta: dict[str, Any], **choice: Any
) -> bytes:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None, **choice}],
    }
    return _event(body)


def _event(body: dict[str, Any] | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body)
    return f"data: {data}\n\n".encode()


async def _until_disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _next_event(job: Job, request: Request) -> tuple[str, Any] | None:
    """The job's next event, or None (and the job cancelled) if the client leaves first."""
    event = asyncio.ensure_future(job.events.get())
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({event, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if event.done():
        return event.result()
    event.cancel()
    job.cancelled.set()
    return None


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


def create_app(assistant: Assistant, settings: ServerSettings = ServerSettings()) -> FastAPI:
    """The FastAPI app around one model; the worker thread lives as long as the app runs."""
    worker = ModelWorker(assistant, settings.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        await asyncio.to_thread(worker.stop)

    app = FastAPI(title="MiniGPT-v2", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.worker = worker
    created = int(time.time())

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        message = (
            f"{error.detail}: {request.method} {request.url.path}; this server offers "
            "GET /v1/models and POST /v1/chat/completions"
        )
        return APIError(error.status_code, message, code).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error")
        return APIError(500, "internal error", "internal_error", kind="server_error").response()

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.api_key.encode()
        ):
            raise APIError(
                401,
                "missing or wrong API key; send the header 'Authorization: Bearer <key>'",
                "invalid_api_key",
            )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "waiting": worker.waiting,
            "completed": worker.completed,
            "cancelled": worker.cancelled,
        }

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [_model_card(settings.model_id, created)]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        if model_id != settings.model_id:
            raise APIError(
                404,
                f"model {model_id!r} is not served here; this server serves {settings.model_id!r}",
                "model_not_found",
            )
        return _model_card(settings.model_id, created)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        authorize(request)
        body = await read_body(request, settings.max_body_bytes)
        parsed = parse_request(body)
        # Decoding a large image takes a moment: keep the event loop free for other clients.
        conversation = await asyncio.to_thread(conversation_from, parsed, assistant, settings)
        job = Job(conversation, parsed.stream, asyncio.get_running_loop())
        worker.submit(job)
        event = await _next_event(job, request)
        if event is None:
            return Response(status_code=499)  # nobody is listening any more
        kind, value = event
        if kind == "error":
            raise value
        if not parsed.stream:
            return JSONResponse(completion_body(value, conversation, assistant, settings.model_id))
        return StreamingResponse(
            _sse(job, event, conversation, assistant, settings.model_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "minigptv2"}


async def _sse(
    job: Job,
    first: tuple[str, Any],
    conversation: Conversation,
    assistant: Assistant,
    model_id: str,
) -> AsyncIterator[bytes]:
    """``chat.completion.chunk`` events: role, text deltas, a final chunk with grounding, [DONE]."""
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    try:
        yield _chunk(completion_id, created, model_id, {"role": "assistant", "content": ""})
        event: tuple[str, Any] = first
        while True:
            kind, value = event
            if kind == "delta":
                yield _chunk(completion_id, created, model_id, {"content": value})
            elif kind == "done":
                grounding = value.grounding.to_json()
                generated = completion_tokens(assistant, value.text)
                yield _chunk(
                    completion_id, created, model_id, {"grounding": grounding},
                    finish_reason=_finish_reason(generated, conversation.config),
                )  # fmt: skip
                break
            else:  # headers are sent already: report the failure inside the stream
                yield _event({"error": value.as_json()})
                break
            event = await job.events.get()
        yield _event("[DONE]")
    finally:
        # Runs also when the client disconnects mid-stream: the worker stops at its next delta.
        job.cancelled.set()


# --------------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}); pick another --port"
        ) from None
    sock.listen(128)
    return sock


def make_server(app: FastAPI, log_level: str = "warning"):
    """A uvicorn server for ``app``; call ``.run(sockets=[bind(...)])`` (blocks)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def serve(assistant: Assistant, settings: ServerSettings, host: str, port: int) -> None:
    """Serve until interrupted; prints the address (with the real port when ``port`` is 0)."""
    sock = bind(host, port)
    address = sock.getsockname()
    if host not in ("127.0.0.1", "::1", "localhost") and settings.api_key is None:
        print(
            f"warning: listening on {host} without an API key; anyone who can reach it can use it"
        )
    print(f"serving {settings.model_id} on http://{host}:{address[1]}/v1", flush=True)
    make_server(create_app(assistant, settings), log_level="info").run(sockets=[sock])


def run(args: argparse.Namespace) -> int:
    """``minigptv2 serve --api``: load the model, then serve until interrupted."""
    from minigptv2.serve.terminal import load_assistant

    api_key = args.api_key or os.environ.get("MINIGPTV2_API_KEY") or None
    settings = ServerSettings(
        model_id=model_id(args),
        api_key=api_key,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_image_side=args.max_image_side,
        default_max_tokens=min(args.max_new_tokens, args.max_tokens),
        max_tokens_limit=args.max_tokens,
        max_queue=args.max_queue,
    )
    assistant = load_assistant(args)
    with contextlib.suppress(KeyboardInterrupt):
        serve(assistant, settings, args.host, 8000 if args.port is None else args.port)
    return 0


def model_id(args: argparse.Namespace) -> str:
    """The name clients see: the model folder's name, or the shipped model's."""
    source = args.model or args.checkpoint
    return f"minigptv2-{Path(source).stem}" if source is not None else "minigptv2-shapes"
