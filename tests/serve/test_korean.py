"""Korean prompts and answers through every front end, on a stand-in for ``shapes-ko`` (issue 17
point 6): a tiny random model with an English + Korean tokenizer (``tests/conftest.py``). A random
model does not answer correctly, so these test the plumbing: the prompt reaches the model as the
Hangul pieces of the tokenizer, and a Korean answer with a box (scripted where it matters) comes
back parsed, drawn and serialised."""

from __future__ import annotations

import io
import json
import sys

import httpx
import pytest
import torch
from PIL import Image
from test_api import data_url, png_bytes, request, running, sse_events

from minigptv2 import drawing
from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.cli import main
from minigptv2.data.shapes import ShapesConfig, make_sample
from minigptv2.model import MiniGPTv2
from minigptv2.serve.terminal import DEMO_TASKS, demo_questions, demo_scene, judge
from minigptv2.serve.ui import EXAMPLE_PROMPT_TASKS, EXAMPLE_SCENES, DemoSession, example_prompts

REFER = "[refer] 빨간 원"
# What a Korean answer with a grounded phrase looks like.
ANSWER = "<p>빨간 원</p> {<10><20><50><60>}"


@pytest.fixture
def no_hangul_font(monkeypatch):
    """This machine has no font with Hangul; make sure a test machine that has one agrees."""
    monkeypatch.setattr(drawing, "font_candidates", lambda text: [])


@pytest.fixture
def scripted(monkeypatch, korean_tokenizer):
    """Every model answers ``ANSWER``, whole or step by step; records the prompt ids it got."""
    answer = [*korean_tokenizer.encode(ANSWER), korean_tokenizer.eos_id]
    prompts: list[list[int]] = []

    def generate(self, input_ids, attention_mask, pixel_values=None, **kwargs):
        prompts.extend(row[mask.bool()].tolist() for row, mask in zip(input_ids, attention_mask,
                                                                       strict=True))  # fmt: skip
        return torch.tensor([answer] * input_ids.shape[0])

    def generate_steps(self, input_ids, attention_mask, pixel_values=None, **kwargs):
        prompts.append(input_ids[0].tolist())
        for token in answer:
            yield torch.tensor([token] * input_ids.shape[0])

    monkeypatch.setattr(MiniGPTv2, "generate", generate)
    monkeypatch.setattr(MiniGPTv2, "generate_steps", generate_steps)
    return prompts


def hangul_pieces(tokenizer, ids: list[int]) -> list[str]:
    pieces = tokenizer.pieces([i for i in ids if 0 <= i < tokenizer.vocab_size])
    assert not [p for p in pieces if p == "<unk>" or p.startswith("<0x")], pieces
    return [p for p in pieces if any("\uac00" <= c <= "\ud7a3" for c in p)]


@pytest.fixture
def scene_file(tmp_path):
    path = tmp_path / "scene.png"
    make_sample(7, "test", task="refer").image.save(path)
    return path


# -- generate ------------------------------------------------------------------------------------


def test_generate_with_a_hangul_prompt_returns_the_box_and_draws_it(
    shapes_ko, scripted, korean_tokenizer, scene_file, tmp_path, capsys, no_hangul_font
):
    drawn = tmp_path / "out.png"
    args = ["generate", "--model", "shapes-ko", "--image", str(scene_file), "--prompt", REFER]
    assert main([*args, "--json", "--draw", str(drawn)]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["text"] == ANSWER
    ((phrase, box),) = [(row["phrase"], row["box"]) for row in result["grounding"]]
    assert phrase == "빨간 원" and box == [11.2, 22.4, 56.0, 67.2]  # bins of a 112-px scene
    # The prompt reached the model as the tokenizer's Hangul pieces (no unknown, no raw bytes).
    (prompt,) = scripted
    assert "".join(hangul_pieces(korean_tokenizer, prompt)).replace("▁", "") == "빨간원"
    assert korean_tokenizer.decode(prompt).count(REFER) == 1
    # No Hangul font here: the box is labelled "1", and the legend goes to stderr.
    assert Image.open(drawn).size == (448, 448)
    assert "labels drawn as numbers" in err and "1 = 빨간 원" in err
    assert "fonts-nanum" in err


# -- chat ----------------------------------------------------------------------------------------


def test_chat_reads_hangul_lines_and_survives_bytes_that_are_not_utf8(
    shapes_ko, korean_tokenizer, scene_file, tmp_path, monkeypatch, capsys
):
    spied = []
    real_steps = MiniGPTv2.generate_steps

    def spy(self, input_ids, *args, **kwargs):
        spied.append(input_ids[0].tolist())
        return real_steps(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(MiniGPTv2, "generate_steps", spy)
    typed = b"[vqa] \xff\xfe?\n/refer \xeb\xb9\xa8\xea\xb0\x84 \xec\x9b\x90\n/quit\n"  # UTF-8
    stdin = io.TextIOWrapper(io.BytesIO(typed), encoding="utf-8")  # errors="strict", as a tty
    monkeypatch.setattr(sys, "stdin", stdin)
    args = ["chat", "--model", "shapes-ko", "--image", str(scene_file), "--max-new-tokens", "3"]
    assert main([*args, "--save-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "error: the text" in printed and "UTF-8" in printed  # the bad line, then on
    assert printed.count("assistant: ") == 1
    (prompt,) = spied
    assert "".join(hangul_pieces(korean_tokenizer, prompt)).replace("▁", "") == "빨간원"


# -- demo ----------------------------------------------------------------------------------------


def test_korean_demo_questions_are_the_english_ones_in_korean():
    index, english = demo_scene()
    korean_index, korean = demo_scene("ko")
    assert korean_index == index  # the rule picks the same scene in both languages
    for en, ko in zip(english, korean, strict=True):
        assert ko.image.tobytes() == en.image.tobytes() and ko.task == en.task
        assert ko.turns[0].user.split()[0] == en.turns[0].user.split()[0]  # the task token
        assert any("\uac00" <= char <= "\ud7a3" for char in ko.turns[0].user)
        assert ko.targets["language"] == "ko"
        assert judge(ko, ko.turns[0].assistant)[0], ko.task  # the truth is right


def test_korean_demo_judges_with_the_korean_normalisation():
    by_task = dict(zip(DEMO_TASKS, demo_questions(*demo_scene()[:1], "ko"), strict=True))
    vqa = by_task["vqa"]
    truth = vqa.turns[0].assistant
    assert judge(vqa, f" {truth.replace(' ', '')}. ")[0]  # spacing and punctuation are ignored
    assert not judge(vqa, "보라색")[0]
    caption = by_task["caption"]
    assert judge(caption, caption.turns[0].assistant.replace(" ", ""))[0]  # spacing is ignored


def test_demo_in_korean_prints_korean_questions_and_truths(
    shapes_ko, tmp_path, capsys, no_hangul_font
):
    args = ["demo", "--model", "shapes-ko", "--language", "ko", "--out", str(tmp_path)]
    assert main([*args, "--max-new-tokens", "4"]) == 0
    printed = capsys.readouterr().out
    index, samples = demo_scene("ko")
    assert printed.startswith(f"test-split scene {index}:")
    for sample in samples:
        question, truth = sample.turns[0].user, sample.turns[0].assistant
        assert f"{question}\n  model: " in printed
        assert f"\n  truth: {truth}\n  " in printed
    verdicts = [line for line in printed.splitlines() if line.startswith(("  right", "  wrong"))]
    assert len(verdicts) == len(DEMO_TASKS)
    assert (tmp_path / "demo.png").is_file() and (tmp_path / "demo_refer.png").is_file()


def test_demo_in_korean_with_an_own_image_asks_in_korean(shapes_ko, scene_file, tmp_path, capsys):
    args = ["demo", "--model", "shapes-ko", "--language", "ko", "--image", str(scene_file)]
    assert main([*args, "--out", str(tmp_path), "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr().out
    assert "[grounding] 이 이미지를 자세히 설명해 주세요\n  model: " in printed
    assert "[caption] 이 이미지를 간단히 설명해 주세요.\n  model: " in printed


def test_demo_in_korean_refuses_a_model_without_hangul(saved_english_model, tmp_path, capsys):
    args = ["demo", "--model", str(saved_english_model), "--language", "ko", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --language ko: this model's tokenizer has no pieces")
    assert "--model shapes-ko" in err and not (tmp_path / "demo.png").exists()


@pytest.fixture
def saved_english_model(tmp_path, tiny_model, tokenizer):
    from minigptv2.checkpoints import save_pretrained

    return save_pretrained(tiny_model, tokenizer, tmp_path / "english", full=True)


# -- HTTP server ---------------------------------------------------------------------------------


def test_server_round_trips_hangul_whole_and_streamed(shapes_ko, scripted, korean_tokenizer):
    assistant = Assistant.load("shapes-ko")
    scene = make_sample(7, "test", task="refer").image
    body = request(data_url(png_bytes(scene)), REFER, max_tokens=32)
    with running(assistant) as url, httpx.Client(base_url=url, timeout=60) as client:
        raw = client.post("/v1/chat/completions", content=json.dumps(body, ensure_ascii=False))
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply:
            events = sse_events(reply)
    assert raw.status_code == 200, raw.text
    assert raw.headers["content-type"].startswith("application/json")
    message = json.loads(raw.content.decode("utf-8"))["choices"][0]["message"]
    assert message["content"] == ANSWER
    assert message["grounding"] == [{"phrase": "빨간 원", "box": [11.2, 22.4, 56.0, 67.2]}]
    chunks = events[:-1]
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text.strip() == ANSWER
    assert chunks[-1]["choices"][0]["delta"]["grounding"] == message["grounding"]
    # Both requests reached the model as the same Hangul pieces.
    whole, streamed = scripted
    assert whole == streamed
    assert "".join(hangul_pieces(korean_tokenizer, whole)).replace("▁", "") == "빨간원"


# -- Gradio UI -----------------------------------------------------------------------------------


def test_ui_offers_korean_example_prompts_for_a_model_that_reads_them(korean_tokenizer, tokenizer):
    korean = ShapesConfig(language="ko")
    expected = [
        make_sample(EXAMPLE_SCENES[0], "test", korean, task=task).turns[0].user
        for task in EXAMPLE_PROMPT_TASKS
    ]
    offered = example_prompts(korean_tokenizer)
    assert set(expected) <= set(offered)
    assert len(offered) == 2 * len(EXAMPLE_PROMPT_TASKS)  # English ones too
    assert not set(expected) & set(example_prompts(tokenizer))  # an English tokenizer: none


def test_ui_answers_a_korean_prompt_with_its_box_and_a_legend(shapes_ko, scripted, no_hangul_font):
    session = DemoSession(Assistant.load("shapes-ko"), GenerationConfig(max_new_tokens=16))
    scene = make_sample(7, "test", task="refer").image
    *_, (chat, state, annotated) = session.respond(scene, "refer", "빨간 원", (None,) * 4, [], {})
    assert chat[0] == {"role": "user", "content": REFER}
    assert "- 빨간 원: (11, 22, 56, 67)" in chat[1]["content"]
    assert "1 = 빨간 원" in chat[1]["content"]  # the image labels the box "1"
    assert state["turns"][0].assistant == ANSWER and annotated.size == (448, 448)
