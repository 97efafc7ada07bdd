"""Two small lmms-eval tasks over generated Shapes scenes, written to a folder; no download.

``write_shapes_tasks(folder)`` renders held-out test scenes (``data.shapes.evaluation_set``) to PNG
and writes, beside them, the task YAMLs lmms-eval reads with ``--include_path folder``:

* ``shapes_vqa`` — ``generate_until``: the scene's VQA question, scored by exact match
  (``eval.metrics.exact_match``, the Shapes benchmark's rule).
* ``shapes_yesno`` — ``multiple_choice`` (lmms-eval asks for each choice's ``loglikelihood``):
  the yes/no VQA questions, choices "yes" and "no", scored by accuracy (the more likely choice
  is the answer).

The documents are a local JSON-lines file that ``datasets``' ``json`` builder reads. The YAMLs'
functions live here; the ``utils.py`` written beside them only imports them.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from PIL import Image

TASKS = ("shapes_vqa", "shapes_yesno")


def write_shapes_tasks(folder: str | Path, count: int = 8, split: str = "test") -> Path:
    """Write ``count`` documents per task, their images and the task files into ``folder``."""
    from minigptv2.data.shapes import make_sample

    folder = Path(folder).resolve()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    documents: dict[str, list[dict[str, Any]]] = {task: [] for task in TASKS}
    index = 0
    while min(len(docs) for docs in documents.values()) < count:
        sample = make_sample(index, split, task="vqa")
        answer = sample.targets["answer"]
        image = folder / "images" / f"{split}-{index}.png"
        row = {"id": index, "image": str(image), "question": sample.turns[0].user, "answer": answer}
        wanted = [t for t in TASKS if len(documents[t]) < count]
        if answer not in ("yes", "no"):
            wanted = [t for t in wanted if t != "shapes_yesno"]
        if wanted:
            sample.image.save(image)
            for task in wanted:
                documents[task].append(row)
        index += 1
    for task, rows in documents.items():
        with (folder / f"{task}.jsonl").open("w") as file:
            file.writelines(json.dumps(row) + "\n" for row in rows)
        (folder / f"{task}.yaml").write_text(_yaml(task, folder / f"{task}.jsonl"))
    (folder / "utils.py").write_text(
        "from minigptv2.integrations.lmms_task import (  # noqa: F401\n"
        "    doc_to_text, doc_to_visual, process_vqa, process_yesno,\n)\n"
    )
    return folder


def _yaml(task: str, data: Path) -> str:
    common = f"""task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {json.dumps(str(data))}
test_split: test
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
"""
    if task == "shapes_vqa":
        return (
            common
            + """output_type: generate_until
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 8
  do_sample: false
  until: []
process_results: !function utils.process_vqa
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
        )
    return (
        common
        + """output_type: multiple_choice
doc_to_choice: ["yes", "no"]
doc_to_target: answer
target_delimiter: ""
process_results: !function utils.process_yesno
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
    )


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    with Image.open(doc["image"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: Any = None) -> str:
    return doc["question"]


def process_vqa(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    from minigptv2.eval.metrics import exact_match

    return {"exact_match": float(exact_match(results[0], doc["answer"]))}


CHOICES = ("yes", "no")


def process_yesno(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    likelihoods = [log_likelihood(result) for result in results]
    best = max(range(len(CHOICES)), key=lambda index: likelihoods[index])
    return {"acc": float(CHOICES[best] == doc["answer"])}


def log_likelihood(result: Any) -> float:
    """A choice's log-likelihood from its ``(log_likelihood, is_greedy)`` response.

    lmms-eval 0.7.3's evaluator passes every response through ``unwrap_generation_output``, which
    turns anything but text into ``str(response)``, so a multiple-choice task receives
    ``"(-0.84, False)"`` and its built-in scoring fails; this reads both forms.
    """
    if isinstance(result, str):
        result = ast.literal_eval(result)
    return float(result[0])
