"""The terminal commands: ``generate`` (one shot, for scripts), ``chat`` (multi-turn), ``demo``.

Every command that loads a model takes the same options: ``--model DIR`` (our format), or the
three released files ``--eva FILE --llama DIR --checkpoint FILE`` with the options ``convert``
takes for them (``checkpoints/options.py``); with neither, the shipped Shapes model is used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minigptv2.checkpoints.options import add_released_arguments
from minigptv2.errors import MiniGPTv2Error, PromptError
from minigptv2.tasks import TASKS


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab escaped (``\\x1b``), so a
    model's output cannot move the cursor or send escape sequences to the user's terminal."""
    return "".join(
        char if char.isprintable() or char in "\n\t" else char.encode("unicode_escape").decode()
        for char in text
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("model (default: the shipped Shapes model)")
    source.add_argument("--model", type=Path, help="a folder saved by this project")
    add_released_arguments(source)  # the same options as `minigptv2 convert`
    source.add_argument(
        "--int8",
        action="store_true",
        help="int8 weights for the language model's linear layers (faster CPU decoding)",
    )
    decoding = parser.add_argument_group("decoding (default: greedy)")
    decoding.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit")
    decoding.add_argument("--sample", action="store_true", help="sample instead of greedy")
    decoding.add_argument("--temperature", type=float, default=0.6, help="with --sample")
    decoding.add_argument("--top-p", type=float, default=0.9, help="with --sample")


def load_assistant(args: argparse.Namespace):
    from minigptv2.assistant import Assistant

    return Assistant.load(
        args.model,
        eva=args.eva,
        llama=args.llama,
        checkpoint=args.checkpoint,
        strict=args.strict,
        dtype=args.dtype,
        image_size=args.image_size,
        vision_heads=args.vision_heads,
        quantize="int8" if getattr(args, "int8", False) else None,
    )


def generation_config(args: argparse.Namespace):
    from minigptv2.assistant import GenerationConfig

    return GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
    )


# -- generate ------------------------------------------------------------------------------------


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, help="image file (omit for a text-only prompt)")
    parser.add_argument("--prompt", required=True, help='e.g. "[refer] the red circle"')
    parser.add_argument("--json", action="store_true", help='print {"text", "grounding"}')
    parser.add_argument("--draw", type=Path, help="save the image with the answer's boxes here")
    add_model_arguments(parser)


def run_generate(args: argparse.Namespace) -> int:
    """Answer one prompt about one image; print the text (or JSON) and optionally draw boxes."""
    from minigptv2.images import load_image

    image = load_image(args.image) if args.image is not None else None
    assistant = load_assistant(args)
    answer = assistant.chat(image, args.prompt, config=generation_config(args))
    if args.draw is not None:
        _draw(image, answer, args.draw)
    print(json.dumps(answer.to_json()) if args.json else printable(answer.text))
    return 0


def _draw(image, answer, path: Path) -> None:
    from minigptv2.drawing import draw_boxes

    if image is None:
        raise PromptError("--draw needs --image")
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_boxes(image, answer.grounding).save(path)


# -- chat ----------------------------------------------------------------------------------------

CHAT_HELP = (
    "type a message; /vqa /caption /grounding /refer /detection /identify prefix the task token;"
    " /image PATH switches image; /reset clears the history; /quit ends"
)


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, help="image to talk about (or /image later)")
    parser.add_argument(
        "--save-dir", type=Path, default=Path("."), help="where annotated answers are saved"
    )
    add_model_arguments(parser)


def run_chat(args: argparse.Namespace) -> int:
    """Multi-turn chat in the terminal; grounded answers are saved as annotated PNGs.

    One ``ChatSession`` per image: the image is encoded once and every turn reuses the KV cache
    of the earlier ones; answers are printed as they are generated.
    """
    assistant = load_assistant(args)
    config = generation_config(args)
    session = assistant.session(args.image)
    saved = 0
    print(CHAT_HELP)
    for line in sys.stdin:
        message = line.strip()
        if not message:
            continue
        if message == "/quit":
            break
        if message == "/reset":
            session.reset()
            print("(history cleared)")
            continue
        if message.startswith("/image "):
            try:
                session = assistant.session(Path(message[len("/image ") :].strip()))
            except MiniGPTv2Error as error:
                print(f"error: {error}")
                continue
            print("(new image; history cleared)")
            continue
        try:
            deltas = session.stream(expand_shortcut(message), config)
        except MiniGPTv2Error as error:
            print(f"error: {error}")
            continue
        print("assistant: ", end="", flush=True)
        for delta in deltas:
            print(printable(delta), end="", flush=True)
        print()
        answer = session.answers[-1]
        if session.image is not None and answer.grounding.boxes:
            saved += 1
            path = args.save_dir / f"minigptv2_chat_{saved}.png"
            try:
                _draw(session.image, answer, path)
            except OSError as error:  # an unwritable folder must not end the conversation
                print(f"error: cannot save the drawn answer to {path}: {error.strerror or error}")
                continue
            print(f"(boxes drawn in {path})")
    return 0


def expand_shortcut(message: str) -> str:
    """``/refer the cat`` -> ``[refer] the cat``; other text is returned unchanged."""
    head, _, rest = message.partition(" ")
    if head.startswith("/") and head[1:] in TASKS:
        return f"[{head[1:]}] {rest}".rstrip()
    return message


# -- demo ----------------------------------------------------------------------------------------


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    # 20: a scene whose boxes the shipped model gets right (the scores over 200 scenes are in
    # README); it finds the blue triangle, a pair it never saw, but names it wrongly.
    parser.add_argument("--seed", type=int, default=20, help="which held-out Shapes scene to use")
    parser.add_argument("--image", type=Path, help="use this image instead of a Shapes scene")
    # Its own folder (git-ignored), not the current one: a demo run in a checkout must not
    # scatter PNGs over the source tree.
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), help="folder for demo.png and demo_refer.png"
    )
    add_model_arguments(parser)


def run_demo(args: argparse.Namespace) -> int:
    """Show the whole system: a scene, one question per task, answers, boxes drawn to PNGs.

    ``OUT/demo.png`` holds the grounded caption's boxes, ``OUT/demo_refer.png`` the referring box.
    """
    from minigptv2.data.shapes import make_sample
    from minigptv2.drawing import draw_boxes
    from minigptv2.images import load_image

    if args.out.exists() and not args.out.is_dir():
        raise MiniGPTv2Error(f"--out {args.out} is a file; pass a folder for demo.png")
    assistant = load_assistant(args)
    config = generation_config(args)
    if args.image is not None:
        image = load_image(args.image)
        prompts = [
            "[grounding] describe this image in detail",
            "[caption] Briefly describe this image.",
        ]
    else:
        sample = make_sample(args.seed, "test", task="refer")
        image = sample.image
        expression = sample.targets["expression"]
        prompts = [
            "[grounding] describe this image in detail",
            f"[refer] give me the location of {expression}",
            "[caption] Briefly describe this image.",
            "[detection] circles",
            "[vqa] how many shapes are there?",
            f"[identify] what is it in {sample.turns[0].assistant}",
        ]
    answers = assistant.generate([image] * len(prompts), prompts, config)
    for prompt, answer in zip(prompts, answers, strict=True):
        print(f"{prompt}\n  -> {printable(answer.text)}")
    args.out.mkdir(parents=True, exist_ok=True)
    drawn = args.out / "demo.png"
    draw_boxes(image, answers[0].grounding).save(drawn)
    refer = args.out / "demo_refer.png"
    if args.image is None:
        draw_boxes(image, answers[1].grounding).save(refer)
    print(
        f"grounded caption drawn in {drawn}"
        + (f", referring box in {refer}" if args.image is None else "")
    )
    return 0


# -- eval ----------------------------------------------------------------------------------------


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark",
        default="shapes",
        help="shapes, refcoco, refcoco+, refcocog, okvqa, vqav2, gqa, vsr, iconvqa, vizwiz, "
        "hateful_memes, chair, pope",
    )
    parser.add_argument(
        "--split", help="e.g. test, val, testA, testdev, random, long (default: the first one)"
    )
    parser.add_argument(
        "--limit", type=int, help="evaluate the first N questions (Shapes: per task, default 200)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="questions per forward pass")
    parser.add_argument("--data-root", type=Path, help="folder with the benchmark's annotations")
    parser.add_argument("--images", type=Path, help="folder with its images (default: data root)")
    parser.add_argument("--out", type=Path, help="folder for resumable predictions and scores")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    add_model_arguments(parser)


def run_eval(args: argparse.Namespace) -> int:
    """Score a model on a benchmark with the paper's prompts; prints a table (or JSON)."""
    from minigptv2.eval.runner import evaluate, get_benchmark, markdown_table

    split = args.split or get_benchmark(args.benchmark).splits[0]
    get_benchmark(args.benchmark, split)
    assistant = load_assistant(args)  # after the names are checked: a typo fails in a second
    identity = str(args.model or args.checkpoint or "shipped")
    summary = evaluate(
        assistant,
        args.benchmark,
        split,
        limit=args.limit,
        batch_size=args.batch_size,
        out=args.out,
        identity=identity,
        data_root=args.data_root,
        images=args.images,
    )
    print(json.dumps(summary) if args.json else markdown_table(summary))
    return 0
