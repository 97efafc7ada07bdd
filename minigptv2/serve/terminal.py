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

from minigptv2.checkpoints.options import (
    add_quantize_argument,
    add_released_arguments,
    quantization,
)
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
    add_quantize_argument(source)
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
        quantize=quantization(args),
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

# One question per task token, in this order (the grounded caption first: it is drawn to demo.png).
DEMO_TASKS = ("grounding", "refer", "caption", "detection", "vqa", "identify")
# The demo's scene is chosen by this rule, not by how well a model does on it: the first scene of
# the held-out test split with at least this many objects (enough for every question to have
# something to tell apart).
DEMO_MIN_OBJECTS = 3


def demo_questions(index: int):
    """Test-split sample ``index`` of every task in ``DEMO_TASKS``: one question each about the
    same scene (the scene depends only on the split and index), with its true answer."""
    from minigptv2.data.shapes import make_sample

    return [make_sample(index, "test", task=task) for task in DEMO_TASKS]


def demo_scene() -> tuple[int, list]:
    """The demo's default scene by ``DEMO_MIN_OBJECTS``'s rule: its test-split index and questions.

    A scene on which some builder finds nothing to ask gets a redrawn scene for that task; such
    an index is skipped, so that all six questions are about the one scene shown.
    """
    index = 0
    while True:
        samples = demo_questions(index)
        objects = samples[0].targets["objects"]
        same = all(sample.targets["objects"] == objects for sample in samples)
        if same and len(objects) >= DEMO_MIN_OBJECTS:
            return index, samples
        index += 1


def judge(sample, answer: str) -> tuple[bool, str]:
    """Whether ``answer`` is right for ``sample``'s question, by the Shapes benchmark's scorers
    (refer: IoU >= 0.5; vqa, identify, caption: exact match; detection: every target box matched
    one-to-one at IoU >= 0.5 and no extra box; grounding: every object's box found), and why."""
    from minigptv2.boxes import parse_box
    from minigptv2.eval import shapes
    from minigptv2.eval.benchmark import Item
    from minigptv2.eval.metrics import exact_match, refer_iou

    if sample.task == "caption":  # not a benchmark task: exact match, like vqa
        right = exact_match(answer, sample.targets["answer"])
        return right, "exact match" if right else "not an exact match"
    item = Item(sample.task, sample.task, sample.image, sample.turns[0].user, dict(sample.targets))
    record = shapes.score(item, answer)
    if sample.task == "refer":
        box = parse_box(answer, *sample.image.size, allow_bare=False)
        if box is None:
            return False, "no box in the answer"
        overlap = refer_iou(box, tuple(sample.targets["boxes"][0]))
        return record["correct"], f"IoU {overlap:.2f} {'>=' if record['correct'] else '<'} 0.5"
    if "correct" in record:
        return record["correct"], "exact match" if record["correct"] else "not an exact match"
    hits, predicted, targets = record["true_positives"], record["predicted"], record["targets"]
    extra = predicted - hits
    why = f"{hits} of {targets} boxes matched at IoU >= 0.5, {extra} extra"
    if sample.task == "grounding":  # its benchmark score is the recall of boxes
        return hits == targets, why + "; boxes scored, not the phrases"
    return hits == targets and extra == 0, why


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        help="ask about test-split scene SEED instead (default: the first test scene with "
        f"{DEMO_MIN_OBJECTS}+ objects)",
    )
    parser.add_argument("--image", type=Path, help="use this image instead of a Shapes scene")
    # Its own folder (git-ignored), not the current one: a demo run in a checkout must not
    # scatter PNGs over the source tree.
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), help="folder for demo.png and demo_refer.png"
    )
    add_model_arguments(parser)


def run_demo(args: argparse.Namespace) -> int:
    """Show the whole system: a scene, one question per task, each answer beside the true one
    and marked right or wrong, boxes drawn to PNGs.

    ``OUT/demo.png`` holds the grounded caption's boxes, ``OUT/demo_refer.png`` the referring box.
    Your own ``--image`` gets two questions and no true answers.
    """
    from minigptv2.drawing import draw_boxes
    from minigptv2.images import load_image

    if args.out.exists() and not args.out.is_dir():
        raise MiniGPTv2Error(f"--out {args.out} is a file; pass a folder for demo.png")
    if args.seed is not None and args.seed < 0:
        raise MiniGPTv2Error(f"--seed is a test-split scene index >= 0, got {args.seed}")
    assistant = load_assistant(args)
    config = generation_config(args)
    if args.image is not None:
        image = load_image(args.image)
        samples = None
        images = [image, image]
        prompts = [
            "[grounding] describe this image in detail",
            "[caption] Briefly describe this image.",
        ]
    else:
        if args.seed is None:
            index, samples = demo_scene()
            print(f"test-split scene {index}: the first with {DEMO_MIN_OBJECTS}+ objects")
        else:
            index, samples = args.seed, demo_questions(args.seed)
            print(f"test-split scene {index}")
        image = samples[0].image
        images = [sample.image for sample in samples]
        prompts = [sample.turns[0].user for sample in samples]
    answers = assistant.generate(images, prompts, config)
    right = 0
    for number, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        print(f"{prompt}\n  model: {printable(answer.text)}")
        if samples is None:
            continue
        sample = samples[number]
        correct, why = judge(sample, answer.text)
        right += correct
        print(f"  truth: {sample.turns[0].assistant}\n  {'right' if correct else 'wrong'} ({why})")
    if samples is not None:
        print(f"{right} of {len(samples)} right")
    args.out.mkdir(parents=True, exist_ok=True)
    drawn = args.out / "demo.png"
    draw_boxes(image, answers[0].grounding).save(drawn)
    refer = args.out / "demo_refer.png"
    if samples is not None:
        draw_boxes(samples[1].image, answers[1].grounding).save(refer)
    print(
        f"grounded caption drawn in {drawn}"
        + (f", referring box in {refer}" if samples is not None else "")
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
    parser.add_argument(
        "--language",
        default="en",
        help="the language questions are asked in: en; shapes also ko, the same "
        "scenes and questions in Korean",
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
    get_benchmark(args.benchmark, split, args.language)
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
        language=args.language,
    )
    print(json.dumps(summary) if args.json else markdown_table(summary))
    return 0
