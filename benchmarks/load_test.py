"""Load test of ``minigptv2 serve --api``: many concurrent clients, good and bad requests.

Run: ``python benchmarks/load_test.py`` (defaults: 200 requests from 8 clients, shipped model).

It starts the real server command on a free loopback port, sends every distinct request once on
its own to learn the reference answers (greedy decoding is deterministic), then fires the whole
mix concurrently and checks that

* every valid request gets exactly its reference answer, with grounding that matches its text
  (streamed ones too, reassembled from their chunks),
* every bad request gets its expected 4xx JSON error, and clients that hang up mid-stream leave
  the server serving,
* no request is lost (each gets a response), and
* the server's resident memory (``/proc``, via psutil) does not grow across the run.

It prints one table and exits non-zero if any check fails. Loopback only; nothing is fetched.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from minigptv2.boxes import parse_grounding  # noqa: E402
from minigptv2.data.shapes import make_sample  # noqa: E402

# Memory may settle by a few MB (allocator arenas, caches); a leak per request would show as
# tens of MB over 200 requests of 112-pixel images and KV caches.
RSS_TOLERANCE_MB = 25.0


@dataclass(frozen=True)
class Case:
    """One kind of request: its JSON body (or raw bytes) and what a correct reply looks like."""

    name: str
    body: dict | bytes
    image_size: tuple[int, int] | None = None
    expect_status: int = 200
    expect_code: str | None = None
    stream: bool = False
    hang_up: bool = False  # read the first chunk, then close the connection


@dataclass
class Result:
    case: Case
    status: int
    latency: float
    ok: bool
    detail: str = ""


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def chat_body(url: str | None, text: str, max_tokens: int, stream: bool = False) -> dict:
    content: list[dict] = [{"type": "text", "text": text}]
    if url is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": url}})
    body = {"model": "minigptv2-shapes", "messages": [{"role": "user", "content": content}]}
    return {**body, "max_tokens": max_tokens, "stream": stream}


def valid_cases(max_tokens: int) -> list[Case]:
    cases = []
    prompts = (
        "[grounding] describe this image in detail",
        "[refer] the red square",
        "[detection] circles",
        "[vqa] how many shapes are there?",
        "[caption] Briefly describe this image.",
    )
    for index, prompt in enumerate(prompts * 2):
        image = make_sample(100 + index, "test").image
        stream = index % 3 == 2
        body = chat_body(data_url(image), prompt, max_tokens, stream)
        cases.append(Case(f"valid {index}", body, image.size, stream=stream))
    return cases


def bad_cases(max_tokens: int) -> list[Case]:
    image = make_sample(1, "test").image
    scene = data_url(image)
    # Valid base64 of a PNG cut short: the server decodes the URL and then fails on the image
    # (cutting the URL itself would be bad base64, a different error: invalid_image_url).
    corrupt = "data:image/png;base64," + base64.b64encode(png_bytes(image)[:200]).decode()
    huge = data_url(Image.new("RGB", (5000, 8), "white"))  # a cheap PNG over the 4096-px side
    pdf = "data:image/png;base64," + base64.b64encode(b"%PDF-1.4 not an image").decode()
    return [
        Case("corrupt image", chat_body(corrupt, "[grounding] hi", max_tokens), None, 400,
             "invalid_image"),
        Case("non-image upload", chat_body(pdf, "[grounding] hi", max_tokens), None, 400,
             "invalid_image"),
        Case("too-large image", chat_body(huge, "[grounding] hi", max_tokens), None, 400,
             "image_too_large"),
        Case("empty prompt", chat_body(scene, "  ", max_tokens), None, 400, "empty_prompt"),
        Case("unknown task", chat_body(scene, "[foo] hi", max_tokens), None, 400, "unknown_task"),
        Case("malformed JSON", b'{"messages": [{"role": ', None, 400, "invalid_json"),
        Case("remote URL", chat_body("https://example.com/a.png", "[refer] x", max_tokens), None,
             400, "remote_url_refused"),
        Case("hang up mid-stream", chat_body(scene, "[grounding] describe this image in detail",
             max_tokens, stream=True), None, 200, None, stream=True, hang_up=True),
    ]  # fmt: skip


def mix(valid: list[Case], bad: list[Case], total: int) -> list[Case]:
    """Every fifth request is bad (cycling through the kinds), the rest cycle the valid ones."""
    cases, v, b = [], 0, 0
    for index in range(total):
        if index % 5 == 4:
            cases.append(bad[b % len(bad)])
            b += 1
        else:
            cases.append(valid[v % len(valid)])
            v += 1
    return cases


# -- talking to the server ---------------------------------------------------------------------


def send(client: httpx.Client, case: Case) -> tuple[int, str | None, dict | None]:
    """(status, answer text or None, the message (a stream's: its final choice with the
    grounding its deltas carried) or the error JSON) for one request."""
    kwargs = {"content": case.body} if isinstance(case.body, bytes) else {"json": case.body}
    if not case.stream:
        reply = client.post("/v1/chat/completions", **kwargs)
        payload = reply.json()
        if reply.status_code != 200:
            return reply.status_code, None, payload
        message = payload["choices"][0]["message"]
        return 200, message["content"], message
    with client.stream("POST", "/v1/chat/completions", **kwargs) as reply:
        if reply.status_code != 200:
            reply.read()
            return reply.status_code, None, reply.json()
        pieces, final, grounding, done = [], None, None, False
        for line in reply.iter_lines():
            if not line.startswith("data: "):
                continue
            if case.hang_up:
                return 200, None, {"hung_up": True}  # leaving the block closes the connection
            data = line[len("data: ") :]
            if data == "[DONE]":
                done = True
                break
            choice = json.loads(data)["choices"][0]
            pieces.append(choice["delta"].get("content", ""))
            grounding = choice["delta"].get("grounding", grounding)  # in the last chunk
            if choice.get("finish_reason"):
                final = choice
        if not done or final is None:
            return 200, None, {"error": {"message": "stream ended without [DONE]"}}
        return 200, "".join(pieces).strip(), {**final, "grounding": grounding}


def check(case: Case, status: int, text: str | None, payload: dict | None, reference) -> str:
    """'' when the reply is right, else what is wrong."""
    if status != case.expect_status:
        return f"status {status}, expected {case.expect_status}: {payload}"
    if case.hang_up:
        return ""
    if case.expect_code is not None:
        error = (payload or {}).get("error", {})
        if error.get("code") != case.expect_code or not error.get("message"):
            return f"error {error}, expected code {case.expect_code}"
        return ""
    if text is None:
        return f"no answer: {payload}"
    if reference is not None and text != reference:
        return f"answer {text!r} differs from the reference {reference!r}"
    grounding = payload.get("grounding") if payload else None
    expected = parse_grounding(text, *case.image_size).to_json()
    if grounding != expected:
        return f"grounding {grounding} does not match the text {text!r}"
    return ""


def timed(base: str, case: Case, reference) -> Result:
    with httpx.Client(base_url=base, timeout=600) as client:
        start = time.perf_counter()
        try:
            status, text, payload = send(client, case)
        except httpx.HTTPError as error:  # a lost request: no response at all
            return Result(case, 0, time.perf_counter() - start, False, f"no response: {error!r}")
        latency = time.perf_counter() - start
    problem = check(case, status, text, payload, reference)
    return Result(case, status, latency, not problem, problem)


def start_server(max_queue: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "minigptv2", "serve", "--api", "--host", "127.0.0.1",
               "--port", "0", "--max-queue", str(max_queue)]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if "http://" not in line:
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    base = "http://" + line.split("http://", 1)[1].split("/v1")[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not answer /health within 120 s")


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=24, help="per valid request")
    args = parser.parse_args(argv)

    valid, bad = valid_cases(args.max_tokens), bad_cases(args.max_tokens)
    server, base = start_server(max_queue=4 * args.clients)
    process = psutil.Process(server.pid)
    try:
        # Reference answers, one request at a time; this also warms every code path.
        references: dict[str, str] = {}
        for case in valid:
            plain = Case(case.name, {**case.body, "stream": False}, case.image_size)
            with httpx.Client(base_url=base, timeout=600) as client:
                status, text, payload = send(client, plain)
            problem = check(plain, status, text, payload, None)
            if problem:
                raise SystemExit(f"reference request {case.name} failed: {problem}")
            references[case.name] = text
        for case in bad:
            timed(base, case, None)
        rss_before = rss_mb(process)

        cases = mix(valid, bad, args.requests)
        samples: list[float] = []
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            futures = [pool.submit(timed, base, c, references.get(c.name)) for c in cases]
            results = []
            for future in futures:
                results.append(future.result())
                samples.append(rss_mb(process))
        wall = time.perf_counter() - start
        time.sleep(1.0)  # let hung-up streams finish cancelling
        rss_after = rss_mb(process)
        health = httpx.get(base + "/health", timeout=10).json()
    finally:
        server.terminate()
        server.wait(timeout=60)

    answered = [r for r in results if r.ok and r.case.expect_code is None and not r.case.hang_up]
    errors = [r for r in results if r.ok and r.case.expect_code is not None]
    hung_up = [r for r in results if r.ok and r.case.hang_up]
    wrong = [r for r in results if not r.ok]
    lost = [r for r in results if r.status == 0]
    latencies = [r.latency for r in answered]
    growth = rss_after - rss_before
    rows = [
        ("requests sent", f"{len(results)} from {args.clients} concurrent clients"),
        ("correct answers", f"{len(answered)} (reference text + matching grounding)"),
        ("clear 4xx errors", f"{len(errors)} (each with its expected error code)"),
        ("hung up mid-stream", f"{len(hung_up)} (server kept serving)"),
        ("wrong or lost", f"{len(wrong)} wrong, {len(lost)} without a response"),
        ("wall time", f"{wall:.1f} s"),
        ("throughput", f"{len(results) / wall:.2f} requests/s"),
        ("latency p50 / p95", f"{statistics.median(latencies):.2f} s / "
                              f"{percentile(latencies, 0.95):.2f} s (valid requests)"),
        ("server RSS", f"{rss_before:.0f} MB after warm-up, {max(samples):.0f} MB peak, "
                       f"{rss_after:.0f} MB after ({growth:+.1f} MB)"),
        ("server counters", f"{health['completed']} completed, {health['cancelled']} cancelled"),
    ]  # fmt: skip
    print(f"\nLoad test: max_tokens={args.max_tokens}, shipped model, loopback\n")
    print(f"| {'measure':<20} | {'value':<60} |")
    print(f"|{'-' * 22}|{'-' * 62}|")
    for name, value in rows:
        print(f"| {name:<20} | {value:<60} |")
    for result in wrong[:10]:
        print(f"FAILED {result.case.name}: {result.detail}")
    failed = bool(wrong) or growth > RSS_TOLERANCE_MB
    if growth > RSS_TOLERANCE_MB:
        print(f"FAILED: server memory grew by {growth:.1f} MB (> {RSS_TOLERANCE_MB} MB)")
    print("\nresult:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
