import pytest

from minigptv2.errors import UnknownTaskError
from minigptv2.tasks import INSTRUCTION_POOLS, TASK_TOKENS, TASKS, task_of, with_task


def test_six_task_tokens_in_paper_order():
    assert TASK_TOKENS == (
        "[vqa]",
        "[caption]",
        "[grounding]",
        "[refer]",
        "[detection]",
        "[identify]",
    )


@pytest.mark.parametrize("task", TASKS)
def test_every_pool_template_names_its_own_task(task):
    pool = INSTRUCTION_POOLS[task]
    assert pool, task
    assert all(task_of(template) == task for template in pool)


def test_pool_sizes_match_reference():
    sizes = {task: len(pool) for task, pool in INSTRUCTION_POOLS.items()}
    assert sizes == {
        "vqa": 2,
        "caption": 17,
        "grounding": 4,
        "refer": 7,
        "detection": 1,
        "identify": 7,
    }


def test_trailing_spaces_of_reference_templates_are_kept():
    assert "[caption] A photo of " in INSTRUCTION_POOLS["caption"]
    assert "[caption] Write a short description for the image. " in INSTRUCTION_POOLS["caption"]


def test_free_form_text_has_no_task():
    assert task_of("what is in this picture?") is None
    assert task_of("the [vqa] tag in the middle is not a task") is None


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(UnknownTaskError) as caught:
        task_of("[grounded] describe the image")
    message = str(caught.value)
    assert "[grounded]" in message
    assert all(token in message for token in TASK_TOKENS)


def test_with_task():
    assert with_task("refer", "the dog") == "[refer] the dog"
    with pytest.raises(UnknownTaskError):
        with_task("segment", "the dog")
