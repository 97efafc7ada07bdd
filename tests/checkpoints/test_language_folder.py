"""MiniGPT-v2 on a Hugging Face causal LM folder of each family, through the real path.

Each family's tiny random LM (``llm_helpers``) is loaded strictly, compared with
``AutoModelForCausalLM.from_pretrained`` of the same folder, trained for a few steps, asked
batched and streamed questions, saved and loaded back, and broken on purpose to read the report.
"""

import json

import pytest
import torch
from llm_helpers import FAMILIES_UNDER_TEST, tiny_base, tiny_lm_folder
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.checkpoints.language_folder import load_with_language_model
from minigptv2.checkpoints.pretrained import load_pretrained, save_pretrained
from minigptv2.cli import main
from minigptv2.errors import CheckpointError
from minigptv2.families import FAMILIES
from minigptv2.processor import Processor
from minigptv2.prompts import Turn, chat_format

TRAIN_ROWS = [
    [Turn("[refer] where is the red circle ?", "{<10><20><30><40>}")],
    [Turn("[vqa] how many shapes are there?", "two"), Turn("[vqa] colour?", "blue")],
    [Turn("say yes", "yes")],
]


@pytest.fixture(scope="module", params=FAMILIES_UNDER_TEST)
def lm_folder(request, tmp_path_factory):
    return tiny_lm_folder(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture
def loaded(lm_folder):
    torch.manual_seed(0)
    return load_with_language_model(lm_folder, tiny_base())


def image(seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(60, 80, 3, generator=generator) * 255).byte().numpy())


def test_loads_strictly_and_matches_the_folder_model(lm_folder, loaded):
    model, tokenizer = loaded
    report = model.load_report
    assert report.ok and not report.missing and not report.unexpected
    family = model.config.language.family
    assert model.config.lora_targets == FAMILIES[family].lora_targets
    # Vision width 48 and the LM's hidden size 64, whatever the family.
    assert model.projector.linear.weight.shape == (64, 4 * 48)
    assert model.config.chat_format == ("minigptv2" if family == "llama" else "native")
    reference = AutoModelForCausalLM.from_pretrained(lm_folder).eval()
    ids = torch.tensor([tokenizer.encode("[vqa] what colour is the circle?")])
    with torch.no_grad():
        ours = model.language_model(input_ids=ids).logits  # LoRA B = 0: the folder's model
        torch.testing.assert_close(ours, reference(input_ids=ids).logits)


def test_a_few_training_steps_lower_the_loss(loaded):
    model, tokenizer = loaded
    processor = Processor(tokenizer, model.config)
    style = chat_format(model.config, tokenizer, training=True)
    batch = processor.training_batch(TRAIN_ROWS, [image(0), image(1), None], style=style)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3, losses


def test_batched_and_streamed_generation_agree_with_one_by_one(loaded):
    model, tokenizer = loaded
    style = chat_format(model.config, tokenizer, training=False)
    assistant = Assistant(model, Processor(tokenizer, model.config), style=style)
    prompts = ["[vqa] how many shapes?", "[refer] the small blue circle", "hello"]
    images = [image(3), image(4), None]
    config = GenerationConfig(max_new_tokens=6)
    batched = assistant.generate(images, prompts, config)
    for answer, prompt, picture in zip(batched, prompts, images, strict=True):
        assert assistant.chat(picture, prompt, config=config).text == answer.text
        assert "".join(assistant.stream(picture, prompt, config)) == answer.text
    session = assistant.session(image(3))
    first = session.ask(prompts[0], config)
    second = session.ask("[vqa] and now?", config)
    history = [Turn(prompts[0], first.text)]
    assert assistant.chat(image(3), "[vqa] and now?", history, config).text == second.text


def test_save_and_load_round_trip(loaded, tmp_path):
    model, tokenizer = loaded
    with torch.no_grad():
        for parameter in model.parameter_groups()["lora"]:
            parameter.normal_(std=0.02)  # trained adapters, so that they must be saved
    # Full: without an EVA file the (random) vision weights are on record nowhere else.
    saved = save_pretrained(model, tokenizer, tmp_path / "saved", full=True)
    assert json.loads((saved / "config.json").read_text())["checkpoint_format"]["contents"] == (
        "full"
    )
    again, tokenizer_again = load_pretrained(saved)
    assert again.config == model.config and again.load_report.ok
    text = "[refer] where is {<10><20><30><40>}</s>"
    assert tokenizer_again.encode(text) == tokenizer.encode(text)
    assert tokenizer_again.eos_id == tokenizer.eos_id
    processor = Processor(tokenizer, model.config)
    style = chat_format(model.config, tokenizer, training=True)
    batch = processor.training_batch(TRAIN_ROWS, [image(0), image(1), None], style=style)
    del batch["labels"]
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(**batch).logits, model.eval()(**batch).logits)
    aliases = len(model.state_dict()) - len(load_file(saved / "model.safetensors"))
    assert aliases == (1 if model.config.language.hf.get("tie_word_embeddings") else 0)


def test_with_an_eva_file_a_trainable_save_finds_its_base_files(lm_folder, released, tmp_path):
    model, tokenizer = load_with_language_model(lm_folder, tiny_base(), eva=released.eva)
    assert model.config.vision.width == 88 * model.config.vision.num_heads  # read off the file
    assert not [note for note in model.load_report.fresh if note.key.startswith("vision.")]
    with torch.no_grad():
        model.projector.linear.bias.add_(0.5)
    saved = save_pretrained(model, tokenizer, tmp_path / "trainable")
    meta = json.loads((saved / "config.json").read_text())["checkpoint_format"]
    assert meta["contents"] == "trainable" and meta["base"]["kind"] == "llm"
    again, _ = load_pretrained(saved)
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], tensor, msg=key)


def test_strict_load_names_missing_and_foreign_keys(lm_folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in lm_folder.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    weights = load_file(broken / "model.safetensors")
    weights.pop("model.layers.1.mlp.down_proj.weight")
    weights["model.layers.0.mlp.extra.weight"] = torch.zeros(2, 2)
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as error:
        load_with_language_model(broken, tiny_base())
    message = str(error.value)
    assert f"the language-model folder {broken}" in message
    assert "language_model.base_model.model.model.layers.1.mlp.down_proj.weight" in message
    assert "model.layers.0.mlp.extra.weight" in message


def test_info_counts_minigptv2_on_the_folder(lm_folder, capsys):
    assert main(["info", "--preset", "tiny", "--llm", str(lm_folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    reference = AutoModelForCausalLM.from_pretrained(lm_folder)
    assert summary["language_model"]["params"] == sum(p.numel() for p in reference.parameters())
    assert summary["projector"] == {"params": 4 * 32 * 64 + 64, "trainable": True}
    targets = FAMILIES[reference.config.model_type].lora_targets
    widths = {
        name.rpartition(".")[2]: module
        for name, module in reference.named_modules()
        if name.startswith("model.layers.0.")
    }
    rank, layers = 8, 2  # the tiny preset's LoRA rank, the tiny LM's layers
    per_layer = sum(rank * (widths[t].in_features + widths[t].out_features) for t in targets)
    assert summary["lora"]["params"] == layers * per_layer


def test_not_a_language_model_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match=r"lacks model\.safetensors"):
        load_with_language_model(tmp_path, tiny_base())
    assert main(["info", "--llm", str(tmp_path)]) == 2  # gpt2 is not a supported family
