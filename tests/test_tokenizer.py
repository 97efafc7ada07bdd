import pytest

from minigptv2.errors import ConfigError, PromptError
from minigptv2.tokenizer import Tokenizer


def test_literal_specials_map_to_their_ids(tokenizer):
    ids = tokenizer.encode("<s>[INST] hi [/INST]ok</s>")
    assert ids[0] == tokenizer.bos_id
    assert ids[-1] == tokenizer.eos_id
    assert tokenizer.bos_id == 1 and tokenizer.eos_id == 2 and tokenizer.unk_id == 0
    assert ids.count(1) == 1 and ids.count(2) == 1


def test_text_after_a_special_starts_a_new_word(tokenizer):
    # The reference's slow tokenizer encodes each stretch between specials on its own (spec §10.3),
    # so "[INST]" after "<s>" gets SentencePiece's word-boundary marker.
    ids = tokenizer.encode("<s>[INST]")
    assert tokenizer.pieces(ids[1:])[0].startswith("▁")
    assert ids[1:] == tokenizer.sp.encode("[INST]")


def test_add_bos_prepends_one(tokenizer):
    assert tokenizer.encode("dog", add_bos=True) == [1, *tokenizer.encode("dog")]
    assert tokenizer.encode("<s>dog", add_bos=True)[:2] == [1, 1]


def test_decode_round_trip_drops_specials(tokenizer):
    text = "where is the man in the red shirt ? {<12><5><40><90>}"
    assert tokenizer.decode(tokenizer.encode(f"<s>{text}</s>")) == text


def test_pad_is_the_dollar_piece(tokenizer):
    assert tokenizer.sp.id_to_piece(tokenizer.pad_id) == "$$"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"tokenizer\.model"):
        Tokenizer(tmp_path)


def test_a_file_that_is_not_sentencepiece_is_a_clear_error(tmp_path):
    (tmp_path / "tokenizer.model").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ConfigError, match=r"tokenizer\.model is not a SentencePiece model"):
        Tokenizer(tmp_path)


def test_text_that_is_not_unicode_is_a_prompt_error(tokenizer):
    # Bytes that are not UTF-8 in argv reach Python as lone surrogates (surrogateescape);
    # SentencePiece cannot take them and raised a bare RuntimeError.
    with pytest.raises(PromptError, match=r"\\udcff\\udcfe.*not valid Unicode"):
        tokenizer.encode("[vqa] \udcff\udcfe?")
    assert tokenizer.encode("[vqa] café?") == tokenizer.encode("<s>[vqa] café?")[1:]
