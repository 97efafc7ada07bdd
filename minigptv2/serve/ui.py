"""The Gradio demo (``minigptv2 serve --ui``): upload an image, pick a task, chat, see the boxes.

It follows the reference demo (spec §7): task shortcuts that prefix the identifier, a box for
``[identify]`` appended to the message as ``{<x1><y1><x2><y2>}``, and every answer's boxes drawn in
distinct colours with their phrases (``minigptv2.drawing``). The box is given by clicking two
opposite corners on the image (or by typing them in four number fields); the reference used a
brush sketch instead, but Gradio's image editor does not hand its image over reliably. Answers
stream in as they are generated; the conversation restarts when the image changes.

Example prompts are offered in English and, for a model whose tokenizer reads Hangul
(``--model shapes-ko``), in Korean too.

Gradio is imported only here, so the rest of the package works without it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.boxes import Box, GroundedPhrase, Grounding, box_to_text, parse_grounding
from minigptv2.data.shapes_languages import LEXICONS
from minigptv2.drawing import Drawing, draw_answer
from minigptv2.errors import MiniGPTv2Error, PromptError
from minigptv2.prompts import Turn
from minigptv2.tasks import TASK_TOKENS, TASKS, task_of
from minigptv2.tokenizer import AnyTokenizer, unreadable_characters

FREE_CHAT = "free chat"
# What a task sends when the message box is empty (the reference demo's shortcuts, spec §7).
DEFAULT_MESSAGES: dict[str, str] = {
    "grounding": "describe this image in detail",
    "caption": "Briefly describe this image.",
    "identify": "what is this",
}
# Held-out Shapes scenes (the shipped model's world) offered as example images: 20 is the
# terminal demo's scene, the others hold three or four shapes.
EXAMPLE_SCENES = (20, 7, 8, 3)
# Tasks whose questions about the first example scene are offered as example prompts.
EXAMPLE_PROMPT_TASKS = ("grounding", "refer", "vqa")
HELP = (
    "Upload an image, pick a task and send a message. **grounding**: a caption with boxes; "
    "**refer**: type an expression, get its box; **detection**: type object names; "
    "**identify**: click two corners of an object (or type its box) and ask what it is; "
    "**vqa** / **caption** / free chat: ask anything."
)


# --------------------------------------------------------------------------------------------------
# The logic (plain functions, tested without a browser)
# --------------------------------------------------------------------------------------------------


def next_corners(
    numbers: Sequence[float | None], point: Sequence[int]
) -> tuple[int | None, int | None, int | None, int | None]:
    """A click on the image: the first sets the box's first corner, the second its opposite one."""
    x1, y1, x2, y2 = numbers
    x, y = int(point[0]), int(point[1])
    first_set = bool(x1 or y1)
    if not first_set or bool(x2 or y2):  # start a new box
        return x, y, None, None
    return min(x1, x), min(y1, y), max(x1, x), max(y1, y)


def wants_box(task: str, message: str) -> bool:
    """Whether this message is an [identify] question, which asks about a box."""
    typed = task_of(message.strip())
    return typed == "identify" or (typed is None and task == "identify")


def needs_image(task: str, message: str) -> bool:
    """Every task but free chat, [vqa] and [caption] locates things in the image."""
    typed = task_of(message.strip())
    return (typed or task) in ("grounding", "refer", "detection", "identify")


def box_from_numbers(numbers: Sequence[float | None]) -> Box | None:
    """The typed box, or None when the fields are empty; half-filled fields are an error."""
    given = [value for value in numbers if value is not None]
    if not any(given):  # Gradio shows empty number fields as 0
        return None
    if len(given) != 4:
        raise PromptError("fill in all four box fields (x1, y1, x2, y2 in pixels) or none of them")
    x1, y1, x2, y2 = (float(value) for value in given)
    if x2 <= x1 or y2 <= y1:
        raise PromptError(f"the box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) needs x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)


def compose_prompt(task: str, message: str, box: Box | None, size: tuple[int, int] | None) -> str:
    """The instruction the model reads: the task's identifier, the text, an [identify] box."""
    message = message.strip()
    # An identifier typed by the user wins over the picker.
    if task == FREE_CHAT or task_of(message) is not None:
        prompt = message
    else:
        text = message or DEFAULT_MESSAGES.get(task, "")
        if not text:
            raise PromptError(f"type what the [{task}] task should work on, then send")
        prompt = f"[{task}] {text}"
    if not prompt:
        raise PromptError("the message is empty; type a question or pick a task with a default")
    if task_of(prompt) == "identify" and parse_grounding(prompt, 100, 100).boxes == ():
        if box is None or size is None:
            raise PromptError(
                "[identify] needs a box: click two opposite corners of the object on the image, "
                "or type them in the four box fields"
            )
        # Appended without a space, as the reference demo does (spec §7).
        prompt += box_to_text(box, *size)
    return prompt


def describe(grounding: Grounding) -> str:
    """Chat text for an answer: the words, then each grounded phrase with its pixel box."""
    lines = [grounding.text] if grounding.text else []
    for grounded in grounding.phrases:
        for x1, y1, x2, y2 in grounded.boxes:
            label = grounded.phrase or "box"
            lines.append(f"- {label}: ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})")
    return "\n".join(lines) or "(no answer)"


def fingerprint(image: Image.Image | None) -> str | None:
    """Identifies the uploaded image, so a new image starts a new conversation."""
    if image is None:
        return None
    thumbnail = image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    return hashlib.sha1(thumbnail.tobytes() + repr(image.size).encode()).hexdigest()


def annotate(image: Image.Image, prompt: str, grounding: Grounding, box: Box | None) -> Drawing:
    """The image with the answer's boxes; for [identify], the asked box labelled with the answer.

    A label no installed font can write (Korean without a Hangul font) is drawn as its number,
    and the drawing's legend says what the number stands for (``minigptv2.drawing``)."""
    if task_of(prompt) == "identify" and box is not None and not grounding.boxes:
        grounding = Grounding(grounding.text, (GroundedPhrase(grounding.text or None, (box,)),))
    return draw_answer(image, grounding)


class DemoSession:
    """What one browser tab's ``respond`` needs: the model and its decoding settings."""

    def __init__(self, assistant: Assistant, config: GenerationConfig) -> None:
        self.assistant = assistant
        self.config = config

    def respond(
        self,
        image: Image.Image | None,
        task: str,
        message: str,
        numbers: Sequence[float | None],
        chat: list[dict[str, Any]],
        state: dict[str, Any],
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any], Image.Image | None]]:
        """Yield (chat, state, annotated image) as the answer streams in."""
        image = image.convert("RGB") if image is not None else None
        if "turns" not in state or fingerprint(image) != state.get("image"):
            chat, state = [], {"image": fingerprint(image), "turns": []}
        size = image.size if image is not None else None
        if image is None and needs_image(task, message):
            raise PromptError(f"upload an image first: the [{task}] task answers about an image")
        box = None
        if wants_box(task, message):
            box = box_from_numbers(numbers)
        prompt = compose_prompt(task, message, box, size)
        history: list[Turn] = list(state["turns"])
        chat = [*chat, {"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
        text = ""
        for text in self._stream(image, [*history, Turn(prompt)]):
            partial = parse_grounding(text, *size) if size else Grounding(text, ())
            chat[-1] = {"role": "assistant", "content": describe(partial)}
            yield chat, state, None
        grounding = parse_grounding(text, *size) if size else Grounding(text, ())
        content = describe(grounding)
        annotated = None
        if image is not None:
            drawing = annotate(image, prompt, grounding, box)
            annotated = drawing.image
            if drawing.legend:
                content += f"\n({drawing.legend_text()})"
        chat[-1] = {"role": "assistant", "content": content}
        state = {**state, "turns": [*history, Turn(prompt, text)]}
        yield chat, state, annotated

    def _stream(self, image: Image.Image | None, turns: list[Turn]) -> Iterator[str]:
        """The growing answer text; the whole answer at once if the model cannot stream."""
        stream = getattr(self.assistant, "stream", None)
        if stream is None:
            yield self.assistant.generate([image], [turns], self.config)[0].text
            return
        text = ""
        for delta in stream(image, turns, self.config):
            text += delta
            yield text.strip()


def example_scenes() -> list[Image.Image]:
    """The example images: a newcomer can try every task without an image of their own."""
    from minigptv2.data.shapes import make_sample

    return [make_sample(seed, "test").image for seed in EXAMPLE_SCENES]


def example_prompts(tokenizer: AnyTokenizer) -> list[str]:
    """Questions about the first example scene, one per ``EXAMPLE_PROMPT_TASKS``, in English and
    in every other Shapes language whose questions the model's tokenizer reads (Korean with
    ``--model shapes-ko``): a model trained without Hangul is not offered Korean prompts."""
    from minigptv2.data.shapes import ShapesConfig, make_sample

    prompts = []
    for language in LEXICONS:
        config = ShapesConfig(language=language)
        for task in EXAMPLE_PROMPT_TASKS:
            prompt = make_sample(EXAMPLE_SCENES[0], "test", config, task=task).turns[0].user
            if not unreadable_characters(tokenizer, prompt):
                prompts.append(prompt)
    return prompts


def size_text(image: Image.Image | None) -> str:
    """The image size under the upload, for typing box corners in pixels."""
    if image is None:
        return "No image yet."
    return f"Image: {image.width}×{image.height} pixels."


# --------------------------------------------------------------------------------------------------
# The Gradio app
# --------------------------------------------------------------------------------------------------


def build_demo(assistant: Assistant, config: GenerationConfig):
    """The Blocks app; element ids (``#image-input``, ``#send``, ``#annotated``...) are stable."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    session = DemoSession(assistant, config)

    def respond(image, task, message, x1, y1, x2, y2, chat, state):
        try:
            for chat_now, state_now, annotated in session.respond(
                image, task, message, (x1, y1, x2, y2), chat or [], state or {}
            ):
                yield chat_now, state_now, gr.skip() if annotated is None else annotated, ""
        except MiniGPTv2Error as error:  # bad input: a message in the page, never a traceback
            raise gr.Error(str(error)) from None

    def click_corner(x1, y1, x2, y2, event):
        return next_corners((x1, y1, x2, y2), event.index)

    # Gradio finds the click through this annotation; set as an object, since the module's
    # postponed (string) annotations cannot name the lazily imported gradio.
    click_corner.__annotations__["event"] = gr.SelectData

    with gr.Blocks(title="MiniGPT-v2") as demo:
        gr.Markdown(f"## MiniGPT-v2\n{HELP}")
        state = gr.State({})
        with gr.Row():
            with gr.Column():
                picture = gr.Image(
                    type="pil",
                    format="png",
                    image_mode="RGB",
                    sources=["upload", "clipboard"],
                    label="Image (for [identify], click two opposite corners of the object)",
                    elem_id="image-input",
                )
                size_note = gr.Markdown("No image yet.", elem_id="image-size")
                gr.Examples(
                    [[scene] for scene in example_scenes()],
                    inputs=[picture],
                    label="Shapes scenes (the world the shipped model knows)",
                    elem_id="examples",
                )
                task = gr.Radio(
                    [*TASKS, FREE_CHAT], value="grounding", label="Task", elem_id="task"
                )
                gr.Markdown("Box for [identify] in pixels (click the image twice, or type):")
                with gr.Row():
                    corners = [
                        gr.Number(label=name, precision=0, elem_id=f"box-{name}")
                        for name in ("x1", "y1", "x2", "y2")
                    ]
            with gr.Column():
                annotated = gr.Image(
                    type="pil",
                    format="png",
                    label="Answer with boxes",
                    interactive=False,
                    elem_id="annotated",
                )
                chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=300)
                message = gr.Textbox(
                    label="Message",
                    placeholder=f"e.g. {TASK_TOKENS[2]} describe this image in detail",
                    elem_id="message",
                )
                gr.Examples(
                    [[prompt] for prompt in example_prompts(assistant.processor.tokenizer)],
                    inputs=[message],
                    label="Example prompts (about the first example scene)",
                    elem_id="example-prompts",
                )
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    restart = gr.Button("Restart", elem_id="restart")
        inputs = [picture, task, message, *corners, chatbot, state]
        outputs = [chatbot, state, annotated, message]
        send.click(respond, inputs, outputs)
        message.submit(respond, inputs, outputs)
        picture.change(size_text, picture, size_note)
        picture.select(click_corner, corners, corners)
        restart.click(lambda: ([], {}, None), None, [chatbot, state, annotated])
    # One generation at a time: the model is not shared between concurrent requests.
    demo.queue(default_concurrency_limit=1, max_size=16)
    return demo


def run(args: argparse.Namespace) -> int:
    """``minigptv2 serve --ui``: load the model and serve the demo (local only by default)."""
    from minigptv2.serve.terminal import generation_config, load_assistant

    try:
        import gradio  # noqa: F401
    except ImportError:
        raise MiniGPTv2Error(
            "the demo needs gradio; install it with: pip install 'minigptv2[ui]'"
        ) from None
    assistant = load_assistant(args)
    demo = build_demo(assistant, generation_config(args))
    port = 7860 if args.port is None else args.port
    demo.launch(server_name=args.host, server_port=port or None, share=False, show_error=True)
    return 0
