"""The terminal commands: ``generate`` (one shot, for scripts), ``chat`` (multi-turn), ``demo``.

Every command that loads a model takes the same options: ``--model DIR`` (our format) or
``--model NAME`` (a model shipped with the package, ``shapes`` or ``shapes-ko``), or the three
released files ``--eva FILE --llama DIR --checkpoint FILE`` with the options ``convert``
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
from minigptv2.config import MODEL_NAME_RULE
from minigptv2.data.shapes_languages import LEXICONS
from minigptv2.errors import MiniGPTv2Error, PromptError
from minigptv2.tasks import KOREAN_INSTRUCTION_POOLS, TASKS


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab escaped (``\\x1b``), so a
    model's output cannot move the cursor or send escape sequences to the user's terminal."""
    return "".join(
        char if char.isprintable() or char in "\n\t" else char.encode("unicode_escape").decode()
        for char in text
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("model (default: the shipped Shapes model)")
    source.add_argument("--model", help=f"{MODEL_NAME_RULE}; a folder is one saved by this project")
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
        legend = _draw(image, answer, args.draw)
        if legend:  # on stderr: stdout holds the answer alone (JSON with --json)
            print(legend, file=sys.stderr)
    print(json.dumps(answer.to_json()) if args.json else printable(answer.text))
    return 0


def _draw(image, answer, path: Path) -> str:
    """Save ``image`` with ``answer``'s boxes to ``path``; the legend of numbered labels, if any
    (a phrase no installed font can write, e.g. Korean without a Hangul font: drawing.py)."""
    from minigptv2.drawing import draw_answer

    if image is None:
        raise PromptError("--draw needs --image")
    path.parent.mkdir(parents=True, exist_ok=True)
    drawing = draw_answer(image, answer.grounding)
    drawing.image.save(path)
    return printable(drawing.legend_text())


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
    _tolerant_streams()
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
                legend = _draw(session.image, answer, path)
            except OSError as error:  # an unwritable folder must not end the conversation
                print(f"error: cannot save the drawn answer to {path}: {error.strerror or error}")
                continue
            print(f"(boxes drawn in {path})" + (f"\n({legend})" if legend else ""))
    return 0


def _tolerant_streams() -> None:
    """Korean (any non-ASCII) text in and out whatever the terminal: a typed line whose bytes are
    not in the terminal's encoding becomes lone surrogates, which the tokenizer refuses with a
    message naming the fix, instead of ending the chat; a character the terminal's encoding
    cannot show is printed escaped instead of raising."""
    for stream, errors in ((sys.stdin, "surrogateescape"), (sys.stdout, "backslashreplace")):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on io.StringIO
        if reconfigure is not None:
            reconfigure(errors=errors)


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


# What the demo asks about your own --image, per language: the reference demo's grounded caption
# and caption prompts (spec §7), and the first of the Korean pools of the same tasks.
IMAGE_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": ("[grounding] describe this image in detail", "[caption] Briefly describe this image."),
    "ko": (KOREAN_INSTRUCTION_POOLS["grounding"][0], KOREAN_INSTRUCTION_POOLS["caption"][0]),
}


def demo_questions(index: int, language: str = "en"):
    """Test-split sample ``index`` of every task in ``DEMO_TASKS``: one question each about the
    same scene (the scene depends only on the split and index), with its true answer, worded in
    ``language`` (the Korean sample says what the English one says: ``data/shapes_languages.py``).
    """
    from minigptv2.data.shapes import ShapesConfig, make_sample

    config = ShapesConfig(language=language)
    return [make_sample(index, "test", config, task=task) for task in DEMO_TASKS]


def demo_scene(language: str = "en") -> tuple[int, list]:
    """The demo's default scene by ``DEMO_MIN_OBJECTS``'s rule: its test-split index and questions.

    A scene on which some builder finds nothing to ask gets a redrawn scene for that task; such
    an index is skipped, so that all six questions are about the one scene shown. The scenes do
    not depend on the language, so the rule picks the same scene in every language.
    """
    index = 0
    while True:
        samples = demo_questions(index, language)
        objects = samples[0].targets["objects"]
        same = all(sample.targets["objects"] == objects for sample in samples)
        if same and len(objects) >= DEMO_MIN_OBJECTS:
            return index, samples
        index += 1


def judge(sample, answer: str) -> tuple[bool, str]:
    """Whether ``answer`` is right for ``sample``'s question, by the Shapes benchmark's scorers
    (refer: IoU >= 0.5; vqa, identify, caption: exact match, after the Korean normalisation for a
    Korean question; detection: every target box matched one-to-one at IoU >= 0.5 and no extra
    box; grounding: every object's box found), and why."""
    from minigptv2.boxes import parse_box
    from minigptv2.eval import shapes
    from minigptv2.eval.benchmark import Item
    from minigptv2.eval.metrics import exact_match, refer_iou

    if sample.task == "caption":  # not a benchmark task: exact match, like vqa
        language = sample.targets.get("language", "en")
        right = exact_match(answer, sample.targets["answer"], language)
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
    parser.add_argument(
        "--language",
        default="en",
        choices=sorted(LEXICONS),
        help="the language of the questions and true answers (ko: the same questions about the "
        "same scene in Korean; needs a model whose tokenizer has Hangul, e.g. --model shapes-ko)",
    )
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
    Your own ``--image`` gets two questions and no true answers. ``--language ko`` asks the same
    questions in Korean (a model whose tokenizer reads Hangul: ``--model shapes-ko``). A label no
    installed font can write is drawn as a number, and its legend is printed.
    """
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
        prompts = list(IMAGE_PROMPTS[args.language])
        images = [image] * len(prompts)
    else:
        if args.seed is None:
            index, samples = demo_scene(args.language)
            print(f"test-split scene {index}: the first with {DEMO_MIN_OBJECTS}+ objects")
        else:
            index, samples = args.seed, demo_questions(args.seed, args.language)
            print(f"test-split scene {index}")
        image = samples[0].image
        images = [sample.image for sample in samples]
        prompts = [sample.turns[0].user for sample in samples]
    if args.language != "en":
        truths = [sample.turns[0].assistant for sample in samples or ()]
        check_tokenizer_reads(assistant.processor.tokenizer, [*prompts, *truths], args.language)
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
    legends = [_draw(image, answers[0], drawn)]
    refer = args.out / "demo_refer.png"
    if samples is not None:
        legends.append(_draw(samples[1].image, answers[1], refer))
    print(
        f"grounded caption drawn in {drawn}"
        + (f", referring box in {refer}" if samples is not None else "")
    )
    for path, legend in zip((drawn, refer)[: len(legends)], legends, strict=True):
        if legend:
            print(f"{path.name}: {legend}")
    return 0


def check_tokenizer_reads(tokenizer, texts: list[str], language: str) -> None:
    """Refuse to ask in ``language`` a model whose tokenizer has no pieces for its letters (its
    model never read them: every answer would be noise); note the few it lacks, if any."""
    from minigptv2.tokenizer import unreadable_characters

    letters = {char for text in texts for char in text if not char.isascii() and char.isalpha()}
    missing = unreadable_characters(tokenizer, "".join(sorted(letters)))
    if letters and len(missing) == len(letters):
        raise PromptError(
            f"--language {language}: this model's tokenizer has no pieces for these letters (e.g."
            f" {''.join(missing[:5])!r} become unknown or raw-byte pieces), so it was not trained"
            f" in that language; use --model shapes-ko (English + Korean), or a model trained"
            f" with data.language: {language} or en+{language}"
        )
    if missing:
        print(f"note: the tokenizer reads {''.join(missing)!r} as raw bytes or unknown pieces")


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
    # As a Path, so that a folder's identity is what it was when --model was parsed as one.
    identity = str(Path(args.model) if args.model else args.checkpoint or "shipped")
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
