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

The limits, request models and their checks are in ``minigptv2.serve.schemas``; this module holds
the model worker, the responses (whole and streamed) and the application around them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from minigptv2.assistant import Answer, Assistant, GenerationConfig
from minigptv2.boxes import parse_grounding
from minigptv2.config import DEFAULT_MODEL, SHIPPED_ALIAS
from minigptv2.errors import ConfigError, MiniGPTv2Error
from minigptv2.serve.schemas import (
    APIError,
    Conversation,
    ServerSettings,
    conversation_from,
    from_model_error,
    internal_error,
    parse_request,
    read_body,
)

logger = logging.getLogger("minigptv2.serve.api")


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
                job.emit("error", from_model_error(error))
            except Exception:  # a bug: log it here, answer 500 without its text, keep serving
                logger.exception("generation failed")
                job.emit("error", internal_error())
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


def create_app(assistant: Assistant, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI app around one model; the worker thread lives as long as the app runs."""
    settings = settings if settings is not None else ServerSettings()
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
        return internal_error().response()

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
    """The name clients see: the model folder's (or shipped model's) name, else the default's."""
    source = args.model or args.checkpoint
    if source is None or str(source) == SHIPPED_ALIAS:
        return f"minigptv2-{DEFAULT_MODEL}"
    return f"minigptv2-{Path(source).stem}"
