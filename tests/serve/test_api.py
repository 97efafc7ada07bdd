"""The OpenAI-compatible server, over real HTTP on a free loopback port.

Most tests run the server in-process (uvicorn in a thread) with the shipped Shapes model; one
starts the real ``minigptv2 serve --api`` command. Queueing and disconnects use a scripted
assistant whose timing the test controls, so they are deterministic.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from minigptv2.assistant import Answer, Assistant, GenerationConfig
from minigptv2.cli import build_parser
from minigptv2.prompts import Turn
from minigptv2.serve.api import ServerSettings, bind, create_app, make_server

REPO = Path(__file__).parents[2]
GROUNDING = "[grounding] describe this image"


# -- helpers -----------------------------------------------------------------------------------


@contextmanager
def running(assistant, settings: ServerSettings | None = None) -> Iterator[str]:
    """Serve ``assistant`` on a free loopback port in this process; yields the base URL."""
    app = create_app(assistant, settings or ServerSettings())
    server = make_server(app)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(raw: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(raw).decode()}"


def request(url: str | None, text: str = GROUNDING, **extra) -> dict:
    content: list[dict] = [{"type": "text", "text": text}]
    if url is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": url}})
    return {"model": "anything", "messages": [{"role": "user", "content": content}], **extra}


def sse_events(response: httpx.Response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] and len(error["message"]) > 15
    return error


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shipped) -> Iterator[str]:
    settings = ServerSettings(
        max_image_side=256, max_body_bytes=400_000, default_max_tokens=32, max_tokens_limit=64
    )
    with running(shipped, settings) as url:
        yield url


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


# -- the contract through the real command -----------------------------------------------------


def test_serve_command_answers_the_contract(shipped, scene):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "minigptv2", "serve", "--api", "--host", "127.0.0.1",
               "--port", "0"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        base = line.split("http://", 1)[1].split("/v1")[0]
        with httpx.Client(base_url=f"http://{base}", timeout=60) as client:
            body = request(data_url(png_bytes(scene)), max_tokens=48)
            reply = client.post("/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            completion = reply.json()
            broken = client.post("/v1/chat/completions", json=request("data:image/png;base64,iVBO"))
            models = client.get("/v1/models").json()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    message = completion["choices"][0]["message"]
    expected = shipped.chat(scene, GROUNDING, config=GenerationConfig(max_new_tokens=48))
    assert message["role"] == "assistant"
    assert message["content"] == expected.text  # the same greedy answer as the Python API
    assert message["grounding"] == expected.grounding.to_json()
    assert message["grounding"], "the shipped model grounds a Shapes scene"
    for item in message["grounding"]:
        x1, y1, x2, y2 = item["box"]
        assert 0 <= x1 <= x2 <= scene.width and 0 <= y1 <= y2 <= scene.height
        assert isinstance(item["phrase"], str)
    assert "grounding" not in completion["choices"][0]  # once, in the message (README)
    assert completion["usage"]["total_tokens"] == (
        completion["usage"]["prompt_tokens"] + completion["usage"]["completion_tokens"]
    )
    assert_openai_error(broken, 400, "invalid_image")
    assert models["data"][0]["id"] == "minigptv2-shapes"


def test_serve_listens_on_loopback_by_default():
    args = build_parser().parse_args(["serve", "--api"])
    assert args.host == "127.0.0.1"


# -- answers -----------------------------------------------------------------------------------


def test_models_lists_the_served_model(client):
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [card["id"] for card in listing["data"]] == ["minigptv2-shapes"]
    assert client.get("/v1/models/minigptv2-shapes").json()["object"] == "model"
    assert_openai_error(client.get("/v1/models/gpt-4"), 404, "model_not_found")


def test_streaming_sends_the_same_answer_as_chunks(client, shipped, scene):
    body = request(data_url(png_bytes(scene)), "[refer] the green circle", max_tokens=32)
    whole = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert len(chunks) > 3  # token by token, not one piece
    assert text.strip() == whole["content"]
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] in ("stop", "length")
    # The last chunk's delta carries the grounding, as the message does without streaming.
    assert last["delta"]["grounding"] == whole["grounding"] and whole["grounding"]
    assert "grounding" not in last


def test_earlier_assistant_messages_become_turns(client, shipped, scene):
    first = "[vqa] how many shapes are there?"
    earlier = shipped.chat(scene, first, config=GenerationConfig(max_new_tokens=16)).text
    messages = [
        {"role": "system", "content": "ignored: MiniGPT-v2 has no system prompt"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(png_bytes(scene))}},
            {"type": "text", "text": first},
        ]},
        {"role": "assistant", "content": earlier},
        {"role": "user", "content": GROUNDING},
    ]  # fmt: skip
    reply = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 40})
    assert reply.status_code == 200, reply.text
    turns = [Turn(first, earlier), Turn(GROUNDING)]
    expected = shipped.generate([scene], [turns], GenerationConfig(max_new_tokens=40))[0]
    assert reply.json()["choices"][0]["message"]["content"] == expected.text


def test_text_only_request_has_no_grounding(client):
    reply = client.post("/v1/chat/completions", json=request(None, "hello", max_tokens=8))
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["grounding"] == []


# -- bad input: a clear 4xx each, and the server keeps serving ---------------------------------


def _bad_requests(scene: Image.Image) -> dict[str, tuple[object, int, str]]:
    good = data_url(png_bytes(scene))
    big = data_url(png_bytes(Image.new("RGB", (300, 300), "white")))  # over the 256-px limit
    corrupt = data_url(png_bytes(scene)[:60])
    return {
        "corrupt image": (request(corrupt), 400, "invalid_image"),
        "non-image bytes": (request(data_url(b"%PDF-1.4 not a picture")), 400, "invalid_image"),
        "non-image type": (request(data_url(b"hello", "text/plain")), 400, "invalid_image"),
        "too-large image": (request(big), 400, "image_too_large"),
        "empty prompt": (request(good, "   "), 400, "empty_prompt"),
        "unknown task": (request(good, "[foo] describe this"), 400, "unknown_task"),
        "malformed JSON": (b'{"messages": [', 400, "invalid_json"),
        "JSON not an object": (b"[1, 2]", 400, "invalid_json"),
        "no messages": ({"model": "x"}, 400, "invalid_request"),
        "remote URL": (request("https://example.com/cat.png"), 400, "remote_url_refused"),
        "file URL": (request("file:///etc/passwd"), 400, "invalid_image_url"),
        "not base64": (request("data:image/png;base64,@@@@"), 400, "invalid_image_url"),
        "max_tokens over limit": (request(good, max_tokens=65), 400, "max_tokens_too_large"),
        "two images": (
            {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": good}},
                {"type": "image_url", "image_url": {"url": good}},
                {"type": "text", "text": GROUNDING}]}]},
            400, "too_many_images",
        ),
        "answer last": (
            {"messages": [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "hello"}]},
            400, "invalid_request",
        ),
        "n above 1": (request(good, n=2), 400, "invalid_request"),
        # A lone surrogate is valid JSON but not Unicode text: no tokenizer (or reply) can take it.
        "lone surrogate": (
            b'{"messages": [{"role": "user", "content": "[vqa] what is \\ud800?"}]}',
            400, "invalid_text",
        ),
        "lone surrogate as UTF-8 bytes": (
            b'{"messages": [{"role": "user", "content": "[vqa] \xed\xa0\x80?"}]}',
            400, "invalid_text",
        ),
        "seed past 64 bits": (request(good, seed=2**70), 400, "invalid_request"),
        "deeply nested JSON": (b"[" * 50_000, 400, "invalid_json"),
        "5000-digit number": (b'{"messages": [], "seed": ' + b"9" * 5000 + b"}",
                              400, "invalid_json"),
    }  # fmt: skip


def test_every_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, scene):
    for name, (body, status, code) in _bad_requests(scene).items():
        if isinstance(body, bytes):
            reply = client.post("/v1/chat/completions", content=body)
        else:
            reply = client.post("/v1/chat/completions", json=body)
        try:
            assert_openai_error(reply, status, code)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
    good = request(data_url(png_bytes(scene)), max_tokens=8)
    assert client.post("/v1/chat/completions", json=good).status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_an_unexpected_error_is_a_generic_500_and_never_shows_its_text(shipped, caplog):
    scripted = ScriptedAssistant(shipped)
    scripted.release.set()
    scripted.failure = RuntimeError("secret detail from /home/someone/model.safetensors")
    with running(scripted) as url, httpx.Client(base_url=url, timeout=30) as client:
        replies = [
            client.post("/v1/chat/completions", json=request(None, "hello", stream=stream))
            for stream in (False, True)
        ]
        assert client.get("/health").json()["status"] == "ok"
    for reply in replies:
        assert "secret" not in reply.text
    error = assert_openai_error(replies[0], 500, "internal_error")
    assert "log" in error["message"]
    assert "secret detail" in caplog.text  # the operator still sees it


def test_error_messages_name_the_fix(client, scene):
    remote = client.post("/v1/chat/completions", json=request("http://10.0.0.1/x.png")).json()
    assert "data:image/png;base64" in remote["error"]["message"]
    task = client.post("/v1/chat/completions", json=request(None, "[foo] hi")).json()
    assert "[grounding]" in task["error"]["message"]


def test_oversized_body_is_refused_with_413(client):
    body = json.dumps(request(data_url(os.urandom(450_000)))).encode()
    assert_openai_error(client.post("/v1/chat/completions", content=body), 413, "request_too_large")


def test_bad_streaming_request_fails_before_the_stream_starts(client, scene):
    body = request(data_url(png_bytes(scene)), "[foo] x", stream=True)
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        reply.read()
    assert_openai_error(reply, 400, "unknown_task")


def test_unknown_route_is_a_json_404(client):
    assert_openai_error(client.get("/v1/embeddings"), 404, "not_found")


def test_api_key_is_required_when_set(shipped):
    with (
        running(shipped, ServerSettings(api_key="s3cret")) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert_openai_error(client.get("/v1/models"), 401, "invalid_api_key")
        wrong = {"Authorization": "Bearer nope"}
        assert_openai_error(client.get("/v1/models", headers=wrong), 401, "invalid_api_key")
        right = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/models", headers=right).status_code == 200
        body = request(None, "hello", max_tokens=4)
        reply = client.post("/v1/chat/completions", json=body, headers=right)
        assert reply.status_code == 200


# -- queueing and disconnects, with a scripted assistant ---------------------------------------


class ScriptedAssistant:
    """The real processor (for validation) around generation the test controls."""

    def __init__(self, real: Assistant) -> None:
        self.processor, self.style = real.processor, real.style
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.stream_closed = threading.Event()
        self.answered = 0
        self.failure: Exception | None = None  # raised by generate and stream when set

    def generate(self, images, prompts, config) -> list[Answer]:
        self.started.release()
        assert self.release.wait(timeout=30), "the test never released the worker"
        if self.failure is not None:
            raise self.failure
        self.answered += 1
        return [Answer(f"answer to {turns[-1].user}") for turns in prompts]

    def stream(self, image, prompt, config) -> Iterator[str]:
        if self.failure is not None:
            raise self.failure
        try:
            for index in range(10_000):  # far longer than any client waits for
                yield f"word{index} "
                time.sleep(0.01)
        finally:
            self.stream_closed.set()


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_full_queue_is_refused_with_503_and_nothing_is_dropped(shipped):
    scripted = ScriptedAssistant(shipped)
    results: dict[int, httpx.Response] = {}
    with running(scripted, ServerSettings(max_queue=2)) as url:

        def send(index: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                body = request(None, f"question {index}", max_tokens=4)
                results[index] = client.post("/v1/chat/completions", json=body)

        threads = [threading.Thread(target=send, args=(0,))]
        threads[0].start()
        assert scripted.started.acquire(timeout=10)  # the worker is busy with request 0
        for index in (1, 2):
            threads.append(threading.Thread(target=send, args=(index,)))
            threads[-1].start()
        with httpx.Client(base_url=url, timeout=10) as client:
            assert _wait_for(lambda: client.get("/health").json()["waiting"] == 2)
            body = request(None, "one too many", max_tokens=4)
            refused = client.post("/v1/chat/completions", json=body)
        scripted.release.set()
        for thread in threads:
            thread.join(timeout=30)
    error = assert_openai_error(refused, 503, "server_overloaded")
    assert "retry" in error["message"]
    assert refused.headers["retry-after"] == "1"
    assert sorted(results) == [0, 1, 2]
    answers = [results[i].json()["choices"][0]["message"]["content"] for i in range(3)]
    assert answers == [f"answer to question {i}" for i in range(3)]  # none lost or mixed up


def test_client_leaving_mid_stream_stops_generation(shipped):
    scripted = ScriptedAssistant(shipped)
    scripted.release.set()
    with running(scripted) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = request(None, "talk forever", max_tokens=64, stream=True)
        with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            lines = reply.iter_lines()
            received = [line for line, _ in zip(lines, range(6), strict=False) if line]
        assert any("word" in line for line in received)
        # Leaving closed the model's generator, long before its 10 000 words.
        assert scripted.stream_closed.wait(timeout=10)
        assert _wait_for(lambda: client.get("/health").json()["cancelled"] == 1)
        after = client.post("/v1/chat/completions", json=request(None, "still there?"))
        assert after.status_code == 200
        assert after.json()["choices"][0]["message"]["content"] == "answer to still there?"
