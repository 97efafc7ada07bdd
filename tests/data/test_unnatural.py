import json

from data_fixtures import write_json

from minigptv2.data.unnatural import UnnaturalInstructions

RECORD = {
    "instruction": "You are given a word. Output its plural.",
    "instances": [
        {"instruction_with_input": "Output the plural of: Cactus.", "input": "Cactus",
         "constraints": "Answer in ONE word.", "output": "Cacti!"},
        {"instruction_with_input": "unused", "input": "", "constraints": None, "output": "x"},
    ],
}  # fmt: skip
PLAIN = {"instances": [{"instruction_with_input": "Say hi", "constraints": None, "output": "Hi."}]}


def test_filtered_json_and_core_jsonl_give_text_only_samples(tmp_path):
    listed = write_json(tmp_path / "filtered_unnatural_instruction.json", [RECORD, PLAIN])
    lines = tmp_path / "core_data.jsonl"
    lines.write_text(json.dumps(RECORD) + "\n" + json.dumps(PLAIN) + "\n")
    for path in (listed, lines):
        reader = UnnaturalInstructions(path)
        first, second = reader[0], reader[1]
        assert first.image is None and first.task is None
        assert first.source == "unnatural_instruction"
        assert first.turns[0].user == "output the plural of cactus answer in one word"
        assert first.turns[0].assistant == "cacti"
        assert (second.turns[0].user, second.turns[0].assistant) == ("say hi", "hi")


def test_long_outputs_are_cut_to_50_words_like_the_reference(tmp_path):
    long = {
        "instances": [{"instruction_with_input": "Go", "constraints": None, "output": "w " * 80}]
    }
    sample = UnnaturalInstructions(write_json(tmp_path / "u.json", [long]))[0]
    assert len(sample.turns[0].assistant.split()) == 50
