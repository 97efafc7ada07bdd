"""lmms-eval runs MiniGPT-v2 end to end through its own evaluator on the Shapes tasks.

Skipped without lmms-eval (``pip install -e ".[lmms]"``; see README for the install recipe).
"""

import os
from importlib.metadata import entry_points

import pytest

pytest.importorskip("lmms_eval", reason='lmms-eval is not installed (pip install -e ".[lmms]")')

from minigptv2.assistant import SHIPPED_MODEL, Assistant, GenerationConfig
from minigptv2.eval.likelihood import answer_log_likelihoods
from minigptv2.eval.metrics import exact_match
from minigptv2.integrations.lmms import MODEL_ID, MiniGPTv2LMM, model_manifest
from minigptv2.integrations.lmms_task import doc_to_visual, log_likelihood, write_shapes_tasks

COUNT = 4


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    folder = write_shapes_tasks(tmp_path_factory.mktemp("tasks"), count=COUNT)
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["HF_DATASETS_CACHE"] = str(tmp_path_factory.mktemp("datasets"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        from lmms_eval import evaluator
        from lmms_eval.models import MODEL_REGISTRY_V2
        from lmms_eval.tasks import TaskManager

        if MODEL_ID not in MODEL_REGISTRY_V2.list_model_names():
            # Installed before the entry point was declared: register as the entry point would.
            MODEL_REGISTRY_V2.register_manifest(model_manifest())
        results = evaluator.simple_evaluate(
            model=MODEL_ID,
            model_args=f"pretrained={SHIPPED_MODEL}",
            tasks=["shapes_vqa", "shapes_yesno"],
            task_manager=TaskManager("WARNING", include_path=str(folder)),
            batch_size=2,
            log_samples=True,
        )
    return folder, results


def test_pyproject_declares_the_lmms_eval_entry_point():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '[project.entry-points."lmms_eval.models"]' in text
    assert 'minigptv2 = "minigptv2.integrations.lmms:model_manifest"' in text
    installed = [ep for ep in entry_points(group="lmms_eval.models") if ep.name == MODEL_ID]
    if installed:  # present once the package is (re)installed
        assert installed[0].load() is model_manifest


def test_generate_until_through_the_evaluator_matches_the_assistant(evaluated):
    _, results = evaluated
    samples = results["samples"]["shapes_vqa"]
    assert len(samples) == COUNT
    assistant = Assistant.load()
    for sample in samples:
        doc = sample["doc"]
        expected = assistant.chat(
            doc_to_visual(doc)[0], doc["question"], config=GenerationConfig(8)
        ).text
        assert sample["filtered_resps"][0] == expected
        assert sample["exact_match"] == float(exact_match(expected, doc["answer"]))
    score = results["results"]["shapes_vqa"]["exact_match,none"]
    assert score == sum(s["exact_match"] for s in samples) / COUNT


def test_loglikelihood_through_the_evaluator_ranks_by_our_likelihoods(evaluated):
    _, results = evaluated
    samples = results["samples"]["shapes_yesno"]
    assert len(samples) == COUNT
    assistant = Assistant.load()
    for sample in samples:
        doc = sample["doc"]
        image = doc_to_visual(doc)[0]
        ours = answer_log_likelihoods(assistant, [image] * 2, [doc["question"]] * 2, ["yes", "no"])
        theirs = [log_likelihood(response[0]) for response in sample["resps"]]
        assert theirs == pytest.approx([ll for ll, _ in ours], abs=1e-4)
        chosen = "yes" if ours[0][0] > ours[1][0] else "no"
        assert sample["acc"] == float(chosen == doc["answer"])
    assert 0.0 <= results["results"]["shapes_yesno"]["acc,none"] <= 1.0


def test_the_adapter_refuses_unknown_model_args():
    with pytest.raises(TypeError, match="temperature"):
        MiniGPTv2LMM(pretrained=str(SHIPPED_MODEL), temperature=0.5)


assert os.environ.get("HF_HUB_OFFLINE", "1")  # the tests never reach a hub
