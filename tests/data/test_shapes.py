"""The Shapes world: determinism, geometry, pixels, and that every answer is true of its scene."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pytest

from minigptv2.boxes import parse_grounding
from minigptv2.data import Sample
from minigptv2.data.shapes import (
    CONVERSATION,
    PALETTE,
    RELATION_GAP,
    SHAPES,
    SHAPES_MIX,
    SPLITS,
    TASK_BUILDERS,
    VQA_KINDS,
    Scene,
    ShapeObject,
    ShapesConfig,
    ShapesDataset,
    evaluation_set,
    make_sample,
    make_scene,
    referring_expression,
    render,
    scene_split,
)
from minigptv2.errors import ConfigError, PromptError, UnknownTaskError
from minigptv2.prompts import IMAGE_SLOT, Turn
from minigptv2.prompts import render as render_prompt
from minigptv2.tasks import INSTRUCTION_POOLS, TASKS, task_of

CONFIG = ShapesConfig()
SIDE = CONFIG.image_size
CELL = SIDE / 100  # one step of the 0..100 box grid, in pixels
PER_TASK = 100

# The position words an expression may end with: axis (0 = x, 1 = y) and which end is meant.
POSITIONS = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}


@pytest.fixture(scope="module")
def samples() -> dict[str, list[Sample]]:
    """PER_TASK training samples of every builder (conversations included)."""
    return {
        task: [make_sample(index, "train", CONFIG, task=task) for index in range(PER_TASK)]
        for task in TASK_BUILDERS
    }


# --------------------------------------------------------------------------------------------------
# Helpers: an independent reading of the text against the scene
# --------------------------------------------------------------------------------------------------


def center(obj: dict) -> tuple[float, float]:
    x1, y1, x2, y2 = obj["box"]
    return ((x1 + x2) / 2, (y1 + y2) / 2)


def resolve(expression: str, objects: list[dict]) -> list[dict]:
    """Every object the expression can mean: filter by its words, then by its position word."""
    words = expression.split()
    assert words[0] == "the", expression
    vocabulary = {"the", "object", "on", "at", *PALETTE, *SHAPES, *POSITIONS}
    assert set(words) <= vocabulary, f"unexpected words in {expression!r}"
    matches = [
        obj
        for obj in objects
        if all(obj["color"] == w for w in words if w in PALETTE)
        and all(obj["shape"] == w for w in words if w in SHAPES)
    ]
    if words[-1] in POSITIONS:
        axis, sign = POSITIONS[words[-1]]
        gap = RELATION_GAP * SIDE
        matches = [
            obj
            for obj in matches
            if all(sign * (center(obj)[axis] - center(o)[axis]) >= gap for o in matches if o != obj)
        ]
    return matches


def within_a_cell(parsed: tuple, truth: tuple) -> bool:
    """A parsed box equals the true pixel box up to the grid's truncation (< one cell)."""
    return all(0 <= w - g < CELL + 1e-9 for g, w in zip(parsed, truth, strict=True))


def assert_boxes_match(parsed: tuple, truth: list) -> None:
    assert len(parsed) == len(truth), (parsed, truth)
    assert all(within_a_cell(p, t) for p, t in zip(parsed, truth, strict=True)), (parsed, truth)


def object_at(box: tuple, objects: list[dict]) -> dict:
    (found,) = [obj for obj in objects if within_a_cell(box, obj["box"])]
    return found


# --------------------------------------------------------------------------------------------------
# Determinism and splits
# --------------------------------------------------------------------------------------------------


def test_same_split_and_index_give_the_same_sample():
    for index in range(5):
        a, b = make_sample(index, "train"), make_sample(index, "train")
        assert a.image.tobytes() == b.image.tobytes()
        assert a.turns == b.turns and a.targets == b.targets and a.task == b.task


def test_different_splits_give_different_samples():
    for index in range(5):
        images = {make_sample(index, split, task="caption").image.tobytes() for split in SPLITS}
        assert len(images) == len(SPLITS)


def test_known_samples_do_not_change():
    # Pins the generator: any change to it (or a dependence on Python's salted hash) shows here.
    expected = [
        ("caption", 0, "[caption] Briefly describe this image.", "a red triangle"),
        ("refer", 1, "[refer] where can I locate the red circle ?", "{<75><8><93><27>}"),
        ("vqa", 2, "[vqa] what shape is the red object on the right?", "circle"),
    ]
    for task, index, instruction, answer in expected:
        assert make_sample(index, "train", task=task).turns == (Turn(instruction, answer),)


def test_a_scene_belongs_to_exactly_the_split_it_was_drawn_for():
    for split in SPLITS:
        for index in range(30):
            objects = make_sample(index, split, task="caption").targets["objects"]
            scene = Scene(
                SIDE,
                SIDE,
                tuple(ShapeObject(o["shape"], o["color"], tuple(o["box"])) for o in objects),
                (0, 0, 0),
            )
            assert scene_split(scene) == split


def test_scene_does_not_depend_on_the_task():
    objects = {task: make_sample(7, "test", task=task).targets["objects"] for task in TASK_BUILDERS}
    assert len({repr(value) for value in objects.values()}) == 1


# --------------------------------------------------------------------------------------------------
# Geometry and pixels
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [CONFIG, ShapesConfig(image_size=160, max_objects=6, colors=("red", "blue"), gap=2)],
    ids=["default", "custom"],
)
def test_objects_are_inside_apart_and_drawn_exactly_in_their_boxes(config):
    counts = Counter()
    for seed in range(80):
        scene = make_scene(random.Random(seed), config)
        pixels = np.asarray(render(scene))
        assert pixels.shape == (config.image_size, config.image_size, 3)
        counts[len(scene.objects)] += 1
        drawn = np.zeros(pixels.shape[:2], dtype=bool)
        for i, obj in enumerate(scene.objects):
            x1, y1, x2, y2 = obj.box
            assert config.border <= x1 < x2 <= config.image_size - config.border
            assert config.border <= y1 < y2 <= config.image_size - config.border
            assert config.min_object_size <= x2 - x1 <= config.max_object_size
            for other in scene.objects[i + 1 :]:
                a, b = obj.box, other.box
                assert (
                    a[2] + config.gap <= b[0]
                    or b[2] + config.gap <= a[0]
                    or a[3] + config.gap <= b[1]
                    or b[3] + config.gap <= a[1]
                ), (obj, other)

            mask = (pixels == PALETTE[obj.color]).all(axis=-1)
            inside = mask[y1:y2, x1:x2]
            drawn[y1:y2, x1:x2] |= inside
            # An interior point has the colour (the triangle's apex is up, so look low).
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            if obj.shape == "triangle":
                cy = y1 + (y2 - y1) * 3 // 4
            assert mask[cy, cx], obj
            # Tight: the border rows and columns hold the colour, the ones just outside do not.
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any()
            assert inside[:, -1].any(), obj
            assert not mask[y1 - 1, x1:x2].any() and not mask[y2, x1:x2].any()
            assert not mask[y1:y2, x1 - 1].any() and not mask[y1:y2, x2].any()
        # Every palette-coloured pixel belongs to some object's box.
        palette = np.zeros_like(drawn)
        for rgb in PALETTE.values():
            palette |= (pixels == rgb).all(axis=-1)
        assert not (palette & ~drawn).any()
    assert set(counts) == set(range(config.min_objects, config.max_objects + 1))


def test_background_is_not_constant():
    pixels = np.asarray(make_sample(0, "train", task="caption").image).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50


# --------------------------------------------------------------------------------------------------
# Language: referring expressions, instructions, answers
# --------------------------------------------------------------------------------------------------


def test_referring_expressions_are_unique_and_shortest():
    for seed in range(300):
        scene = make_scene(random.Random(seed), CONFIG)
        objects = [obj.to_json() for obj in scene.objects]
        rng = random.Random(seed)
        for target, as_json in zip(scene.objects, objects, strict=True):
            for attributes in ({}, {"use_color": False}, {"use_shape": False}):
                expression = referring_expression(target, scene, rng, **attributes)
                if expression is None:
                    continue
                assert resolve(expression, objects) == [as_json], (expression, objects)
                if "use_color" in attributes:
                    assert not set(expression.split()) & set(PALETTE)
                if "use_shape" in attributes:
                    assert not set(expression.split()) & set(SHAPES)
            expression = referring_expression(target, scene, rng)
            if sum(obj.shape == target.shape for obj in scene.objects) == 1:
                assert expression == f"the {target.shape}"
            elif sum(obj.name == target.name for obj in scene.objects) == 1:
                assert expression == f"the {target.name}"


def test_instructions_come_from_the_task_pools(samples):
    patterns = {
        task: [re.escape(t).replace(r"\{\}", "(.+)") for t in pool]
        for task, pool in INSTRUCTION_POOLS.items()
    }
    for builder, group in samples.items():
        for sample in group:
            assert sample.source == "shapes"
            assert sample.task == (None if builder == CONVERSATION else builder)
            for turn in sample.turns:
                task = task_of(turn.user)
                assert turn.user.startswith(f"[{task}] ")
                assert builder in (task, CONVERSATION)
                assert any(re.fullmatch(p, turn.user) for p in patterns[task]), turn.user
                assert turn.assistant


def test_refer_answers_are_the_box_of_the_unique_object(samples):
    for sample in samples["refer"]:
        objects, targets = sample.targets["objects"], sample.targets
        assert resolve(targets["expression"], objects) == [objects[targets["object"]]]
        assert targets["expression"].removeprefix("the ") in sample.turns[0].user
        assert_boxes_match(parse_grounding(targets["answer"], SIDE, SIDE).boxes, targets["boxes"])
        assert targets["boxes"] == [objects[targets["object"]]["box"]]


def test_identify_answers_name_the_object_in_the_box(samples):
    for sample in samples["identify"]:
        (turn,) = sample.turns
        (box,) = parse_grounding(turn.user, SIDE, SIDE).boxes
        obj = object_at(box, sample.targets["objects"])
        assert turn.assistant == f"{obj['color']} {obj['shape']}"


def test_grounding_boxes_every_object_left_to_right(samples):
    for sample in samples["grounding"]:
        objects = sample.targets["objects"]
        grounding = parse_grounding(sample.turns[0].assistant, SIDE, SIDE)
        names = [f"a {o['color']} {o['shape']}" for o in objects]
        assert [p.phrase for p in grounding.phrases] == names
        assert all(len(p.boxes) == 1 for p in grounding.phrases)
        assert_boxes_match(grounding.boxes, [o["box"] for o in objects])
        assert [center(o)[0] for o in objects] == sorted(center(o)[0] for o in objects)


def test_detection_finds_every_matching_object(samples):
    kinds = Counter()
    for sample in samples["detection"]:
        targets, objects = sample.targets, sample.targets["objects"]
        kinds[targets["kind"]] += 1
        query = sample.turns[0].user.removeprefix("[detection] ")
        grounding = parse_grounding(sample.turns[0].assistant, SIDE, SIDE)
        assert [p.phrase for p in grounding.phrases] == [p for p, _ in targets["phrases"]]
        for parsed, (phrase, boxes) in zip(grounding.phrases, targets["phrases"], strict=True):
            assert_boxes_match(parsed.boxes, boxes)
            words = phrase.split()
            if words[0] == "the":
                expected = resolve(phrase, objects)
                assert len(expected) == 1
            else:
                # "circles", "red shapes", "red circles", or a caption's "two blue squares"
                nouns = [w.removesuffix("s") for w in words]
                expected = [
                    o
                    for o in objects
                    if all(o["color"] == w for w in words if w in PALETTE)
                    and all(o["shape"] == n for n in nouns if n in SHAPES)
                ]
            assert [o["box"] for o in expected] == boxes, (phrase, objects)
        if targets["kind"] == "caption_to_phrases":
            phrases = [phrase for phrase, _ in targets["phrases"]]
            listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1])
            assert query == (listed if len(phrases) == 1 else f"{listed} and {phrases[-1]}")
            assert sum(len(b) for _, b in targets["phrases"]) == len(objects)
        else:
            assert [p for p, _ in targets["phrases"]] == [query]
    assert set(kinds) == {"shape_class", "color_group", "color_shape", "expression"} | {
        "caption_to_phrases"
    }


def test_captions_name_every_object_once(samples):
    for sample in samples["caption"]:
        caption = sample.turns[0].assistant
        described = Counter()
        for phrase in re.split(r", | and ", caption):
            number, color, shape = phrase.split()
            count = {"a": 1, "two": 2, "three": 3, "four": 4}[number]
            described[(color, shape.removesuffix("s") if count > 1 else shape)] += count
        assert described == Counter((o["color"], o["shape"]) for o in sample.targets["objects"])


def test_vqa_answers_are_true(samples):
    kinds = Counter()
    for sample in samples["vqa"]:
        targets, objects = sample.targets, sample.targets["objects"]
        question, answer = targets["question"], sample.turns[0].assistant
        assert sample.turns[0].user.endswith(question)
        kinds[targets["kind"]] += 1
        if count := re.fullmatch(r"how many (?:(\w+) )?(\w+)s are there\?", question):
            color, shape = count.groups()
            if shape == "shape":
                color, shape = color, None
            expected = sum(
                (color is None or o["color"] == color) and (shape is None or o["shape"] == shape)
                for o in objects
            )
            assert answer == str(expected) == str(targets["count"]), question
        elif asked := re.fullmatch(r"what (color|shape) is (the .+)\?", question):
            attribute, subject = asked.groups()
            if subject.startswith("the object at "):
                obj = object_at(parse_grounding(subject, SIDE, SIDE).boxes[0], objects)
            else:
                (obj,) = resolve(subject, objects)
                hidden = PALETTE if attribute == "color" else SHAPES
                assert not set(subject.split()) & set(hidden), question
            assert answer == obj[attribute]
        else:
            color, shape = re.fullmatch(r"is there a (\w+) (\w+)\?", question).groups()
            present = any(o["color"] == color and o["shape"] == shape for o in objects)
            assert answer == ("yes" if present else "no")
    assert set(kinds) == set(VQA_KINDS)


def test_conversations_mix_tasks_with_the_image_in_the_first_turn(samples):
    lengths = Counter()
    for sample in samples[CONVERSATION]:
        lengths[len(sample.turns)] += 1
        tasks = [task_of(turn.user) for turn in sample.turns]
        assert tasks == sample.targets["tasks"] and len(set(tasks)) == len(tasks)
        assert all(turn.assistant for turn in sample.turns)
        assert sample.image is not None
        pieces = render_prompt(sample.turns)
        assert IMAGE_SLOT in pieces[0].text
        assert sum(piece.text.count(IMAGE_SLOT) for piece in pieces) == 1
    assert set(lengths) == {2, 3}


# --------------------------------------------------------------------------------------------------
# Mixing, datasets, evaluation sets
# --------------------------------------------------------------------------------------------------


def test_mix_weights_drive_task_frequencies():
    n = 2000
    observed = Counter(make_sample(i, "train").task or CONVERSATION for i in range(n))
    total = sum(SHAPES_MIX.values())
    chi2 = sum(
        (observed[task] - n * w / total) ** 2 / (n * w / total) for task, w in SHAPES_MIX.items()
    )
    assert set(observed) == set(SHAPES_MIX)
    assert chi2 < 22.46, (chi2, observed)  # 6 degrees of freedom, p = 0.001


def test_custom_mix_and_fixed_task():
    drawn = {make_sample(i, "train", mix={"refer": 1.0, "identify": 0.0}).task for i in range(30)}
    assert drawn == {"refer"}
    dataset = ShapesDataset("val", 4, task="grounding")
    assert len(dataset) == 4 and all(sample.task == "grounding" for sample in dataset)
    assert dataset[2].turns == make_sample(2, "val", task="grounding").turns
    with pytest.raises(IndexError):
        dataset[4]


def test_evaluation_set_is_fixed_and_carries_targets():
    first, second = evaluation_set("refer", 5), evaluation_set("refer", 5)
    assert [s.turns for s in first] == [s.turns for s in second]
    for sample in first:
        assert sample.task == "refer"
        assert {"objects", "answer", "boxes", "expression"} <= set(sample.targets)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_size": 0}, "image_size"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"max_objects": 11}, "max_objects"),
        ({"min_object_size": 50, "max_object_size": 40}, "swap them"),
        ({"max_object_size": 120}, "does not fit"),
        ({"max_objects": 10, "min_object_size": 30}, "crowd"),
        ({"gap": -1}, "gap"),
        ({"background_noise": 100}, "background_noise"),
        ({"shapes": ("hexagon",)}, "shapes"),
        ({"colors": ()}, "colors"),
        ({"colors": ("red", "red")}, "colors"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ConfigError, match=message):
        ShapesConfig(**changes)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_sample(0, "dev"), "split"),
        (lambda: make_sample(0, "train", task="segmentation"), "task"),
        (lambda: make_sample(0, "train", mix={"refer": -1.0}), "weight"),
        (lambda: make_sample(0, "train", mix={"refer": 0.0}), "zero"),
        (lambda: make_sample(0, "train", mix={"grounded": 1.0}), "task"),
        (lambda: ShapesDataset("train", -1), "size"),
        (lambda: evaluation_set("ocr", 3), "task"),
    ],
)
def test_bad_arguments_raise_config_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_sample_requires_answered_turns_and_a_known_task():
    with pytest.raises(PromptError, match="no answer"):
        Sample(None, (Turn("[vqa] what is it?"),), "vqa", "test")
    with pytest.raises(PromptError, match="at least one turn"):
        Sample(None, (), None, "test")
    with pytest.raises(UnknownTaskError, match="grounded"):
        Sample(None, (Turn("hi", "hello"),), "grounded", "test")
    assert Sample(None, [Turn("hi", "hello")], None, "test").turns == (Turn("hi", "hello"),)
    assert set(TASKS) < set(TASK_BUILDERS)
