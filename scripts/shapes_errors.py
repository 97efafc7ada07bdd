"""Where a Shapes model goes wrong, from the predictions of ``minigptv2 eval --out DIR``.

    minigptv2 eval --split val --out DIR
    python scripts/shapes_errors.py DIR [--json] [--image-size PX]

Four breakdowns:

- **vqa** by question kind (``color_at_box`` reads a colour at a given box; ``color_of`` and
  ``shape_of`` must first find the object a phrase describes; ``exists`` asks about a pair that is
  there, or one made by swapping the attributes of two objects that are, or one that is not).
- **refer** by what the expression names (``shape``, ``color``, ``color+shape``, ``+place``
  when it adds a direction or a landmark) and, for each wrong box, what it landed on:
  ``other object`` (IoU >= 0.5 with an object that is not the target: the words were bound to
  the wrong object), ``near target`` (IoU > 0 with the target only), ``nowhere``.
- **identify** wrong answers: wrong colour, wrong shape or both, for training and held-out pairs.
- **refer by image token**: accuracy when the target shares one of the language model's image
  tokens with another object, and when it has its own. A token is 4 consecutive patches merged
  (MiniGPT-v2's merge), so at 112 px it is a strip of 4 x 1 patches, half the image wide, and at
  168 px (the shipped model) a third. ``--image-size`` sets the grid the tokens are counted on:
  the evaluated model's input size (by default the shipped model's); counting a 168-px model's
  answers on the 112-px grid compares it with a 112-px model on the same questions.

Boxes in predictions are on the 0-100 grid and objects in pixels; objects are put on the grid by
the map that takes the target's own box to its expected answer (IoU does not change under it).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from minigptv2.boxes import iou
from minigptv2.checkpoints.pretrained import read_config
from minigptv2.config import SHIPPED_MODEL, get_preset, resolve_model
from minigptv2.data.shapes_languages import LEXICONS

Row = dict[str, Any]
Rates = dict[str, dict[str, float | int]]  # kind -> right, asked, accuracy
GRID_BOX = re.compile(r"<(\d+)><(\d+)><(\d+)><(\d+)>")


def grid_boxes(text: str) -> list[tuple[int, ...]]:
    """Every ``<x1><y1><x2><y2>`` in ``text``, as grid numbers."""
    return [tuple(int(v) for v in match) for match in GRID_BOX.findall(text)]


def read_predictions(folder: Path) -> list[Row]:
    path = folder / "predictions.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `minigptv2 eval --out {folder}` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rate(counts: dict[str, list[int]]) -> Rates:
    return {
        kind: {"right": right, "asked": asked, "accuracy": round(right / asked, 3)}
        for kind, (right, asked) in sorted(counts.items())
    }


def exists_kind(row: Row) -> str:
    """present / swap (both attributes there, on different objects) / absent."""
    named = row["expected"].get("named") or []
    objects = row["expected"]["objects"]
    if not named or named[0] is None or named[1] is None:
        return "exists"
    color, shape = named
    if any(o["color"] == color and o["shape"] == shape for o in objects):
        return "exists: present"
    colors = {o["color"] for o in objects}
    shapes = {o["shape"] for o in objects}
    return "exists: swap" if color in colors and shape in shapes else "exists: absent"


def vqa_by_kind(rows: Iterable[Row]) -> Rates:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        kind = row["expected"]["kind"]
        if kind == "exists":
            kind = exists_kind(row)
        counts[kind][0] += bool(row["correct"])
        counts[kind][1] += 1
    return _rate(counts)


def _names_target(row: Row, text: str) -> tuple[bool, bool]:
    """Whether ``text`` holds the target's colour word and its shape word, in the row's language."""
    expected = row["expected"]
    lexicon = LEXICONS[expected.get("language", "en")]
    target = expected["objects"][expected["object"]]
    return lexicon.colors[target["color"]] in text, lexicon.shapes[target["shape"]] in text


def expression_kind(row: Row) -> str:
    """What a refer expression names about its target, in the question's language."""
    expression = row["expected"]["expression"]
    color, shape = _names_target(row, expression)
    named = "+".join(part for part, there in (("color", color), ("shape", shape)) if there)
    # Anything beyond the article, the colour and the noun (the shape, or "object") is a direction
    # or a landmark.
    article = LEXICONS[row["expected"].get("language", "en")].article
    plain = int(bool(article)) + int(color) + 1
    return f"{named}+place" if len(expression.split()) > plain else named


def objects_on_grid(row: Row) -> list[tuple[float, ...]]:
    """Every object's box on the 0-100 grid, by the per-axis map that takes the target's pixel
    box to its expected answer (the scene's size is not in the predictions)."""
    expected = row["expected"]
    grid = grid_boxes(expected["answer"])[0]
    pixels = expected["objects"][expected["object"]]["box"]
    sx = (grid[2] - grid[0]) / max(1e-6, pixels[2] - pixels[0])
    sy = (grid[3] - grid[1]) / max(1e-6, pixels[3] - pixels[1])
    ox, oy = grid[0] - pixels[0] * sx, grid[1] - pixels[1] * sy
    return [
        (x1 * sx + ox, y1 * sy + oy, x2 * sx + ox, y2 * sy + oy)
        for x1, y1, x2, y2 in (obj["box"] for obj in expected["objects"])
    ]


def refer_landing(row: Row) -> str:
    """right / other object / near target / nowhere / unparsable."""
    if row["correct"]:
        return "right"
    boxes = grid_boxes(row["answer"])
    if not boxes:
        return "unparsable"
    overlaps = [iou(boxes[0], box) for box in objects_on_grid(row)]
    target = row["expected"]["object"]
    if any(value >= 0.5 for index, value in enumerate(overlaps) if index != target):
        return "other object"
    return "near target" if overlaps[target] > 0 else "nowhere"


def refer_errors(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        table[expression_kind(row)][refer_landing(row)] += 1
    return {kind: dict(sorted(counts.items())) for kind, counts in sorted(table.items())}


def token_cells(grid_box: tuple[float, ...], patches: int, merged: int) -> set[tuple[int, int]]:
    """The merged image tokens (patch row, group of ``merged`` patches in that row) that a box on
    the 0-100 grid overlaps, in an image of ``patches`` x ``patches`` patches."""
    x1, y1, x2, y2 = (value * patches / 100 for value in grid_box)  # in patch units
    return {
        (row, column // merged)
        for row in range(patches)
        if y1 < row + 1 and y2 > row
        for column in range(patches)
        if x1 < column + 1 and x2 > column
    }


def refer_by_token(rows: Iterable[Row], image_size: int) -> Rates:
    config = get_preset("shapes")
    patches = image_size // config.vision.patch_size
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        cells = [token_cells(box, patches, config.tokens_merged) for box in objects_on_grid(row)]
        target = row["expected"]["object"]
        shared = any(cells[target] & other for i, other in enumerate(cells) if i != target)
        kind = "shares a token with another object" if shared else "has its own tokens"
        counts[kind][0] += bool(row["correct"])
        counts[kind][1] += 1
    return _rate(counts)


def identify_errors(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        color, shape = _names_target(row, row["answer"])
        if row["correct"]:
            outcome = "right"
        elif color and not shape:
            outcome = "wrong shape"
        elif shape and not color:
            outcome = "wrong colour"
        else:
            outcome = "wrong colour and shape"
        table["held-out pairs" if row["unseen"] else "training pairs"][outcome] += 1
    return {kind: dict(sorted(counts.items())) for kind, counts in sorted(table.items())}


def breakdown(rows: list[Row], image_size: int) -> dict[str, Any]:
    by_task: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    return {
        "vqa_by_kind": vqa_by_kind(by_task["vqa"]),
        "refer": refer_errors(by_task["refer"]),
        "identify": identify_errors(by_task["identify"]),
        "refer_by_token": refer_by_token(by_task["refer"], image_size),
    }


def _print(result: dict[str, Any]) -> None:
    print("| vqa kind | right / asked | accuracy |\n|---|---|---|")
    for kind, row in result["vqa_by_kind"].items():
        print(f"| {kind} | {row['right']} / {row['asked']} | {row['accuracy']:.2f} |")
    for name in ("refer", "identify"):
        print(f"\n{name}:")
        for kind, counts in result[name].items():
            print(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("\nrefer, by the target's image tokens:")
    for kind, row in result["refer_by_token"].items():
        print(f"  {kind}: {row['right']} / {row['asked']} = {row['accuracy']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the --out folder of a Shapes eval")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="the model's input size in pixels, for the image-token breakdown (default: the"
        " shipped model's)",
    )
    args = parser.parse_args(argv)
    size = args.image_size or read_config(resolve_model(SHIPPED_MODEL)).vision.image_size
    result = breakdown(read_predictions(args.folder), size)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
