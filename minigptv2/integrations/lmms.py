"""An lmms-eval model for MiniGPT-v2 (``pip install -e ".[lmms]"``; lmms-eval 0.7.3).

``--model minigptv2 --model_args pretrained=DIR`` (no ``pretrained``: the shipped Shapes model).
lmms-eval finds the class through the ``lmms_eval.models`` entry point in pyproject.toml, which
names ``model_manifest``. Both request types go through our code: ``generate_until`` is
``Assistant.generate`` (the model's prompt style, greedy unless the task samples), and
``loglikelihood`` is ``eval.likelihood.answer_log_likelihoods`` (the continuation as the whole
answer, ``</s>`` included). A task's context is the instruction (``"[vqa] …"``); the chat template
is applied here, as for every other front end.
"""

from __future__ import annotations

import json
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.errors import ImageError
from minigptv2.eval.likelihood import answer_log_likelihoods

MODEL_ID = "minigptv2"


def model_manifest() -> Any:
    """The ``lmms_eval.models`` entry point: our model id and class."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.MiniGPTv2LMM")


class MiniGPTv2LMM(lmms):
    is_simple = True

    def __init__(
        self,
        pretrained: str | None = None,
        batch_size: int | str = 1,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - {"device"})  # lmms-eval passes its device; we run on CPU
        if unknown:
            raise TypeError(f"minigptv2 model_args do not include {unknown}")
        self.assistant = Assistant.load(pretrained, dtype=dtype)
        self.batch_size = int(batch_size)

    def _image(self, request: Instance) -> Any:
        *_, doc_to_visual, doc_id, task, split = request.args
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
        if len(visuals) > 1:
            raise ImageError(f"{task} doc {doc_id} has {len(visuals)} images; MiniGPT-v2 reads one")
        return visuals[0] if visuals else None

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True), []).append(index)
        for indices in groups.values():
            settings = requests[indices[0]].args[1]
            config = _decoding(settings)
            stops = [stop for stop in settings.get("until", []) if stop]
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                images = [self._image(requests[i]) for i in chunk]
                prompts = [requests[i].args[0] for i in chunk]
                generated = self.assistant.generate(images, prompts, config)
                for i, answer in zip(chunk, generated, strict=True):
                    text = _cut(answer.text, stops)
                    answers[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args[:2], text)
        return [answer if answer is not None else "" for answer in answers]

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        results: list[tuple[float, bool]] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            scores = answer_log_likelihoods(
                self.assistant,
                [self._image(request) for request in chunk],
                [request.args[0] for request in chunk],
                # The template separates question and answer itself.
                [request.args[1].strip() for request in chunk],
            )
            for request, score in zip(chunk, scores, strict=True):
                self.cache_hook.add_partial("loglikelihood", request.args[:2], score)
            results.extend(scores)
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("minigptv2 answers single-round lmms-eval tasks")


def _decoding(settings: dict[str, Any]) -> GenerationConfig:
    temperature = float(settings.get("temperature") or 0.0)
    sample = bool(settings.get("do_sample")) and temperature > 0
    return GenerationConfig(
        max_new_tokens=int(settings.get("max_new_tokens", GenerationConfig.max_new_tokens)),
        do_sample=sample,
        temperature=temperature if sample else 1.0,
        top_p=float(settings.get("top_p") or GenerationConfig.top_p),
    )


def _cut(text: str, stops: list[str]) -> str:
    for stop in stops:
        text = text.split(stop, 1)[0]
    return text
