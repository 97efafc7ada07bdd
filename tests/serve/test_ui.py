"""The Gradio demo: its logic in plain Python, then the real page in headless Chromium.

The browser test uses Debian's ``chromium`` package driven by Playwright (never Playwright's own
browser download). Without Chromium it is skipped with the command that enables it, so the README's
test command passes on a fresh machine; ``.ci/run`` installs Chromium and sets
``MINIGPTV2_REQUIRE_CHROMIUM=1``, under which a missing browser fails the run instead.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from minigptv2.assistant import GenerationConfig
from minigptv2.boxes import box_to_text
from minigptv2.data.shapes import make_sample
from minigptv2.drawing import draw_boxes
from minigptv2.errors import PromptError, UnknownTaskError
from minigptv2.serve.ui import (
    EXAMPLE_SCENES,
    DemoSession,
    box_from_numbers,
    build_demo,
    compose_prompt,
    example_prompts,
    next_corners,
    wants_box,
)

CONFIG = GenerationConfig(max_new_tokens=48)
GROUNDING = "[grounding] describe this image in detail"
BOX_FIELDS = ("x1", "y1", "x2", "y2")


# -- logic -------------------------------------------------------------------------------------


def test_two_clicks_on_the_image_give_the_box_corners():
    first = next_corners((None, None, None, None), [40, 70])
    assert first == (40, 70, None, None)
    assert next_corners(first, [10, 90]) == (10, 70, 40, 90)  # any two opposite corners
    assert next_corners((10, 70, 40, 90), [5, 5]) == (5, 5, None, None)  # a third starts anew
    assert next_corners((0, 0, 0, 0), [3, 4]) == (3, 4, None, None)  # Gradio's empty fields


def test_typed_box_must_be_complete_and_ordered():
    assert box_from_numbers([None, None, None, None]) is None
    assert box_from_numbers([0, 0, 0, 0]) is None  # Gradio's empty number fields
    assert box_from_numbers([1, 2, 30, 40]) == (1.0, 2.0, 30.0, 40.0)
    with pytest.raises(PromptError, match="all four"):
        box_from_numbers([1, None, 3, None])
    with pytest.raises(PromptError, match="x1 < x2"):
        box_from_numbers([30, 2, 10, 40])


def test_prompts_follow_the_task_picker():
    assert compose_prompt("grounding", "", None, (112, 112)) == GROUNDING
    assert compose_prompt("refer", "the red square", None, (112, 112)) == "[refer] the red square"
    assert compose_prompt("free chat", "hello", None, None) == "hello"
    # A typed identifier wins over the picker; a misspelt one is refused.
    assert compose_prompt("grounding", "[vqa] how many?", None, None) == "[vqa] how many?"
    with pytest.raises(UnknownTaskError):
        compose_prompt("grounding", "[foo] hi", None, None)
    with pytest.raises(PromptError, match="refer"):
        compose_prompt("refer", "  ", None, (112, 112))


def test_identify_appends_the_box_like_the_reference_demo():
    box = (11.2, 56.0, 44.8, 100.8)
    expected = "[identify] what is this" + box_to_text(box, 112, 112)
    assert compose_prompt("identify", "", box, (112, 112)) == expected
    assert expected.endswith("{<10><50><40><90>}")
    with pytest.raises(PromptError, match="corners of the object"):
        compose_prompt("identify", "", None, (112, 112))
    assert wants_box("identify", "") and wants_box("vqa", "[identify] what")
    assert not wants_box("identify", "[refer] the cat")


def test_locating_tasks_need_an_image(shipped):
    session = DemoSession(shipped, CONFIG)
    with pytest.raises(PromptError, match="upload an image"):
        next(session.respond(None, "grounding", "", (None,) * 4, [], {}))
    *_, (chat, _, annotated) = session.respond(None, "free chat", "hello", (None,) * 4, [], {})
    assert annotated is None and chat[0]["content"] == "hello"


def test_respond_draws_the_models_boxes_and_keeps_the_conversation(shipped, scene):
    session = DemoSession(shipped, CONFIG)
    numbers = (None, None, None, None)
    *_, (chat, state, annotated) = session.respond(scene, "grounding", "", numbers, [], {})
    expected = shipped.chat(scene, GROUNDING, config=CONFIG)
    assert expected.grounding.boxes, "the shipped model grounds a Shapes scene"
    assert np.array_equal(np.asarray(annotated), np.asarray(draw_boxes(scene, expected.grounding)))
    assert chat[0] == {"role": "user", "content": GROUNDING}
    assert expected.grounding.phrases[0].phrase in chat[1]["content"]
    assert state["turns"][0].assistant == expected.text
    # A second question continues the conversation; a new image starts a fresh one.
    *_, (chat, state, _) = session.respond(scene, "vqa", "how many?", numbers, chat, state)
    assert len(state["turns"]) == 2 and len(chat) == 4
    other = make_sample(8, "test").image
    *_, (chat, state, _) = session.respond(other, "vqa", "how many?", numbers, chat, state)
    assert len(state["turns"]) == 1 and len(chat) == 2


def test_identify_labels_the_asked_box_with_the_answer(shipped, scene):
    session = DemoSession(shipped, CONFIG)
    *_, (_, state, annotated) = session.respond(scene, "identify", "", (10, 60, 46, 101), [], {})
    prompt = state["turns"][0].user
    assert prompt == "[identify] what is this" + box_to_text((10, 60, 46, 101), *scene.size)
    assert annotated is not None and annotated.size == (448, 448)
    # The asked box is drawn in the first colour (red) at 4x scale.
    assert annotated.getpixel((10 * 4, 80 * 4))[:3] == (255, 0, 0)


def test_the_page_offers_shapes_scenes_as_examples(shipped):
    import gradio as gr

    demo = build_demo(shipped, CONFIG)
    datasets = [block for block in demo.blocks.values() if isinstance(block, gr.Dataset)]
    (examples,) = [block for block in datasets if block.elem_id == "examples"]
    # The English model is offered English example prompts only (Korean: serve/test_korean.py).
    (prompts,) = [block for block in datasets if block.elem_id == "example-prompts"]
    assert [sample for (sample,) in prompts.samples] == example_prompts(shipped.processor.tokenizer)
    assert all(sample.isascii() for (sample,) in prompts.samples) and prompts.samples
    assert len(examples.samples) == len(EXAMPLE_SCENES) >= 3
    for (sample,), seed in zip(examples.samples, EXAMPLE_SCENES, strict=True):
        with Image.open(sample["path"]) as shown:
            expected = make_sample(seed, "test").image
            assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(expected))


# -- the page in a real browser ----------------------------------------------------------------


# Where Debian's chromium package puts the real binary (the one on PATH is a shell wrapper).
DEBIAN_CHROMIUM = "/usr/lib/chromium/chromium"
MISSING_CHROMIUM = "Chromium is not installed; `apt-get install -y chromium` enables this test"


def chromium_path() -> str:
    """Debian's Chromium binary. Missing, the browser test is skipped (a fresh machine need not
    have a browser), unless ``MINIGPTV2_REQUIRE_CHROMIUM=1`` (CI), where a skip would hide it."""
    candidates = [os.environ.get("MINIGPTV2_CHROMIUM"), DEBIAN_CHROMIUM]
    candidates += [shutil.which("chromium"), shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    if os.environ.get("MINIGPTV2_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{MISSING_CHROMIUM} (MINIGPTV2_REQUIRE_CHROMIUM=1 requires it)")
    pytest.skip(MISSING_CHROMIUM)


def test_without_chromium_the_browser_test_skips_saying_how_to_enable_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIGPTV2_CHROMIUM", str(tmp_path / "no-browser"))
    monkeypatch.setitem(globals(), "DEBIAN_CHROMIUM", str(tmp_path / "no-debian-browser"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("MINIGPTV2_REQUIRE_CHROMIUM", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium_path()
    monkeypatch.setenv("MINIGPTV2_REQUIRE_CHROMIUM", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_path()
    browser = tmp_path / "chromium"
    browser.write_text("")
    monkeypatch.setenv("MINIGPTV2_CHROMIUM", str(browser))
    assert chromium_path() == str(browser)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(shipped) -> Iterator[str]:
    demo = build_demo(shipped, CONFIG)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture(scope="module")
def page(chromium, demo_url):  # chromium first: no browser, no server started for nothing
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        page.set_default_timeout(120_000)  # generation on a busy 2-core machine
        page.goto(demo_url)
        yield page
        browser.close()


def _annotated_image(page, previous: str | None = None) -> tuple[str, Image.Image]:
    image = page.locator("#annotated img")
    if previous is None:
        image.wait_for()
    else:
        page.wait_for_function(
            "old => { const i = document.querySelector('#annotated img');"
            " return i && i.src !== old; }",
            arg=previous,
        )
    src = image.get_attribute("src")
    return src, Image.open(io.BytesIO(httpx.get(src, timeout=30).content)).convert("RGB")


def test_browser_upload_ground_and_see_the_boxes(page, shipped, scene, tmp_path):
    path = tmp_path / "scene.png"
    scene.save(path)
    page.locator("#image-input input[type=file]").first.set_input_files(str(path))
    # The app reports the size once the server has the uploaded image.
    page.get_by_text(f"Image: {scene.width}×{scene.height} pixels.").wait_for()
    page.get_by_label("grounding").check()
    page.locator("#send").click()
    src, shown = _annotated_image(page)
    expected = shipped.chat(scene, GROUNDING, config=CONFIG)
    # The page shows exactly the model's boxes drawn on the uploaded image.
    assert np.array_equal(np.asarray(shown), np.asarray(draw_boxes(scene, expected.grounding)))
    chat = page.locator("#chat").inner_text()
    assert GROUNDING in chat
    assert expected.grounding.phrases[0].phrase in chat

    # [identify]: two clicks on the image set the box corners, which the question then carries.
    page.get_by_label("identify").check()
    picture = page.locator("#image-input img").first
    frame = picture.bounding_box()
    for fx, fy in ((0.1, 0.55), (0.4, 0.9)):
        picture.click(position={"x": frame["width"] * fx, "y": frame["height"] * fy})
        page.wait_for_timeout(500)
    page.wait_for_function("() => Number(document.querySelector('#box-y2 input').value) > 0")
    box = [float(page.locator(f"#box-{name} input").input_value()) for name in BOX_FIELDS]
    assert box[0] < box[2] and box[1] < box[3]
    assert abs(box[0] - 0.1 * scene.width) <= 3 and abs(box[3] - 0.9 * scene.height) <= 3
    page.locator("#send").click()
    _, shown = _annotated_image(page, previous=src)
    asked = box_to_text(tuple(box), *scene.size)
    page.get_by_text(f"[identify] what is this{asked}").wait_for()
    assert shown.getpixel((int(box[0] * 4) + 1, int((box[1] + box[3]) * 2))) == (255, 0, 0)
