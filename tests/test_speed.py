from PIL import Image

from minigptv2.assistant import Assistant
from minigptv2.processor import Processor
from minigptv2.speed import time_chat_turns, time_generation


def test_timings_count_tokens_per_row_and_time_every_turn(tiny_model, tokenizer, tiny_config):
    assistant = Assistant(tiny_model, Processor(tokenizer, tiny_config))
    image = Image.new("RGB", (64, 48), (10, 200, 10))
    timing = time_generation(
        assistant, [image, None], ["[vqa] what?", "hi"], max_new_tokens=3, repeats=1
    )
    # Two rows, three steps each unless a row ends early with </s>.
    assert timing.batch == 2 and 2 <= timing.tokens <= 6
    assert 0 < timing.time_to_first_token_s <= timing.total_s
    assert timing.to_json()["tokens_per_s"] == timing.tokens / timing.total_s
    turns = time_chat_turns(assistant, image, ["[vqa] a?", "[vqa] b?"], max_new_tokens=2, repeats=1)
    assert len(turns) == 2 and all(t > 0 for t in turns)
