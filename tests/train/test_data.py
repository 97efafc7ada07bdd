"""Data sources of the training loop: the ``custom`` JSONL source and the skipping collator."""

import json

import pytest
from PIL import Image

from minigptv2.data.custom import CustomDataset
from minigptv2.data.export import write_shapes
from minigptv2.data.sample import Sample
from minigptv2.data.shapes import SHAPES_MIX
from minigptv2.errors import ConfigError, DataError
from minigptv2.processor import Processor
from minigptv2.prompts import Turn
from minigptv2.train import loop
from minigptv2.train.config import DataConfig, TrainConfig
from minigptv2.train.data import (
    Collator,
    StepBatchSampler,
    build_mixture,
    corpus,
    vocabulary_mixture,
)
from minigptv2.train.optim import OptimConfig


def test_custom_source_needs_a_path_and_no_mix(tmp_path):
    with pytest.raises(ConfigError, match=r"needs data\.path"):
        build_mixture(DataConfig(source="custom"))
    (tmp_path / "d.jsonl").write_text("")
    with pytest.raises(ConfigError, match="mix does not apply"):
        build_mixture(DataConfig(source="custom", path=str(tmp_path / "d.jsonl"), mix={"a": 1}))


def test_custom_source_visits_every_row_once_per_epoch_in_a_new_order(tmp_path):
    path = write_shapes(tmp_path, 10, seed=2)
    mixture = build_mixture(DataConfig(source="custom", path=str(path)), seed=7)
    rows = [sample.turns for sample in CustomDataset(path)]
    epochs = [[mixture[("custom", n)].turns for n in range(e * 10, e * 10 + 10)] for e in (0, 1)]
    for epoch in epochs:
        assert sorted(map(repr, epoch)) == sorted(map(repr, rows))
    assert epochs[0] != epochs[1] and epochs[0] != rows


def test_custom_source_skips_bad_rows_and_counts_them(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    rows = [
        {"image": "ok.png", "conversation": [{"user": "[vqa] q", "assistant": "a"}]},
        {"image": "gone.png", "conversation": [{"user": "[vqa] q", "assistant": "a"}]},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(map(json.dumps, rows)) + "\n")
    mixture = build_mixture(DataConfig(source="custom", path=str(path)))
    samples = [mixture[("custom", n)] for n in range(8)]
    assert all(sample.turns[0].assistant == "a" and sample.image is not None for sample in samples)
    assert mixture.datasets["custom"].skipped["DataError"] >= 1


def test_collator_leaves_out_over_long_samples(tokenizer, tiny_config):
    processor = Processor(tokenizer, tiny_config.replace(max_txt_len=12))
    collator = Collator(processor)
    image = Image.new("RGB", (32, 32))
    short = Sample(image, (Turn("[vqa] q", "yes"),), "vqa", "test")
    long = Sample(image, (Turn("[vqa] q", "yes " * 40),), "vqa", "test")
    (batch,) = collator([short, long, short])
    assert batch["input_ids"].shape[0] == 2 and batch["pixel_values"].shape[0] == 2
    assert collator.skipped["test"] == 1
    # A batch with nothing usable reuses the previous usable samples instead of failing.
    assert collator([long])[0]["input_ids"].shape[0] == 2
    with pytest.raises(DataError, match="first batch"):
        Collator(processor)([long])


def test_a_run_trains_on_data_written_by_data_shapes(tmp_path):
    path = write_shapes(tmp_path / "data", 16, seed=0)
    config = TrainConfig(
        model="tiny",
        data=DataConfig(source="custom", path=str(path)),
        steps=2,
        batch_size=2,
        save_every=2,
        log_every=1,
        tokenizer_vocab=480,
        tokenizer_samples=40,
        optim=OptimConfig(lr=1e-3, warmup_steps=1, warmup_lr=1e-4, min_lr=1e-4),
        out_dir=str(tmp_path / "run"),
    )
    loop.train(config)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_resumed_sampler_yields_the_samples_of_an_uninterrupted_run(tmp_path):
    path = write_shapes(tmp_path, 6, seed=1)
    mixture = build_mixture(DataConfig(source="custom", path=str(path)), seed=3)
    straight = list(StepBatchSampler(mixture, 0, 6, batch=2, accum=2))
    resumed = list(StepBatchSampler(mixture, 4, 6, batch=2, accum=2))
    assert resumed == straight[8:]
    assert [mixture[k].turns for k in resumed[0]] == [mixture[k].turns for k in straight[8]]


def test_a_from_scratch_tokenizer_reads_every_shapes_task_whatever_the_stage_mix():
    boxes_only = DataConfig(source="shapes", mix={"detection": 1.0})
    assert build_mixture(boxes_only).names == ["detection"]
    vocabulary = vocabulary_mixture(boxes_only)
    assert set(vocabulary.names) == set(SHAPES_MIX)
    lines = corpus(vocabulary, 100)
    # VQA's questions and digit answers, which a detection-only corpus never shows.
    assert any("[vqa]" in line for line in lines)
    assert not any("[vqa]" in line for line in corpus(build_mixture(boxes_only), 100))


# -- the language of Shapes stages ------------------------------------------------------------


def test_shapes_language_reaches_every_row_with_pack_and_world():
    mix = {"refer": 0.5, "vqa": 0.3, "language": 0.2}
    korean = build_mixture(DataConfig(language="ko", pack=3, world="varied", mix=mix))
    rows = [korean[(korean.choose(n), n)] for n in range(30)]
    assert {row.targets["language"] for row in rows} == {"ko"}
    assert any(row.packed for row in rows) and any(row.image is None for row in rows)
    assert any(row.image.size != (112, 112) for row in rows if row.image is not None)
    assert all(turn.user.split()[0] in ("[refer]", "[vqa]") for row in rows if row.packed
               for turn in row.turns)  # fmt: skip
    mixed = build_mixture(DataConfig(language="en+ko", mix={"caption": 1.0}))
    languages = [mixed[(mixed.choose(n), n)].targets["language"] for n in range(40)]
    assert set(languages) == {"en", "ko"}
    assert languages == [mixed[(mixed.choose(n), n)].targets["language"] for n in range(40)]


def test_data_language_is_checked():
    with pytest.raises(ConfigError, match="unknown Shapes language 'fr'"):
        DataConfig(language="fr")
    with pytest.raises(ConfigError, match=r"data\.language applies to the Shapes source only"):
        DataConfig(source="custom", path="x.jsonl", language="ko")


def test_a_bilingual_tokenizer_has_a_piece_for_every_korean_syllable(tmp_path):
    """The from-scratch tokenizer keeps every character of its corpus (character_coverage=1.0):
    unseen Korean samples encode with no unknown and no byte-fallback piece."""
    from minigptv2.tokenizer import train_tokenizer

    vocabulary = vocabulary_mixture(DataConfig(language="en+ko"), seed=0)
    tokenizer = train_tokenizer(
        corpus(vocabulary, 1500), tmp_path, vocab_size=1000, symbols=loop.TEMPLATE_SYMBOLS
    )
    korean = vocabulary_mixture(DataConfig(language="ko"), seed=1)
    for n in range(10**6, 10**6 + 200):
        sample = korean[(korean.choose(n), n)]
        for turn in sample.turns:
            for text in (turn.user, turn.assistant):
                pieces = tokenizer.pieces(tokenizer.encode(text))
                assert not [p for p in pieces if p == "<unk>" or p.startswith("<0x")], text


def test_a_vocabulary_too_small_for_korean_is_a_config_error_naming_the_fix(tmp_path, capsys):
    """SentencePiece only says "Vocabulary size is smaller than required_chars. 480 vs 519"."""
    from minigptv2.cli import main

    config = tmp_path / "stage.yaml"
    config.write_text(f"model: tiny\nsteps: 1\nbatch_size: 2\nout_dir: {tmp_path / 'run'}\n")
    overrides = ["data.language=en+ko", "tokenizer_vocab=480", "tokenizer_samples=300"]
    assert main(["train", "--config", str(config), *overrides]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: tokenizer_vocab=480 is too small for the from-scratch")
    assert "data.language=en+ko" in error and "Set tokenizer_vocab=1000" in error
    needed = int(error.split("need at least ")[1].split()[0])
    assert 480 < needed <= 1000  # the minimum SentencePiece counted: ~520 for en+ko
    assert "Traceback" not in error and "required_chars" not in error


def test_train_tokenizer_reports_the_minimum_vocabulary(tmp_path):
    from minigptv2.tokenizer import VocabularyTooSmallError, train_tokenizer

    with pytest.raises(VocabularyTooSmallError) as caught:
        train_tokenizer(["빨간 원과 파란 사각형"] * 20, tmp_path, vocab_size=100)
    assert caught.value.required > 256  # the byte pieces alone take 256
    assert f"need at least {caught.value.required}" in str(caught.value)
    # With exactly that many pieces it trains.
    tokenizer = train_tokenizer(
        ["빨간 원과 파란 사각형"] * 20, tmp_path / "ok", vocab_size=caught.value.required
    )
    assert tokenizer.vocab_size == caught.value.required
