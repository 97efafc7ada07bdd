"""Unnatural Instructions, text only (stage 3 "language" data, spec §4.1, §1.13).

Reads the filtered JSON list (``filtered_unnatural_instruction.json``) or the original
``core_data.jsonl``: records ``{"instruction", "instances": [{"instruction_with_input",
"constraints", "output"}, ...]}``. Like the reference, the first instance is used; its
constraints (when not null) are appended to the instruction, and both sides go through the text
processor, so long outputs are lower-cased and cut to 50 words (spec §10.14).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from minigptv2.data.reader import Reader, process_text, read_json
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError


class UnnaturalInstructions(Reader):
    source = "unnatural_instruction"

    def __init__(self, annotation: str | Path) -> None:
        super().__init__()
        path = Path(annotation)
        if path.suffix == ".jsonl":
            if not path.is_file():
                raise DataError(f"dataset file not found: {path}")
            with path.open() as handle:
                self.records = [json.loads(line) for line in handle if line.strip()]
        else:
            self.records = read_json(path)

    def build(self, index: int, rng: random.Random) -> Sample:
        instance = self.records[index]["instances"][0]
        instruction = instance["instruction_with_input"]
        if instance.get("constraints") is not None:
            instruction = f"{instruction} {instance['constraints']}"
        answer = process_text(instance["output"])
        return self.single_turn(None, None, process_text(instruction), answer)
