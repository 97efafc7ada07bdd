from minigptv2.streaming import REPLACEMENT, TextDeltas


def deltas_of(tokenizer, ids):
    deltas = TextDeltas(tokenizer.decode, tokenizer.eos_id)
    pieces = [deltas.push(token) for token in ids]
    return pieces, deltas.finish()


def test_deltas_join_to_the_stripped_answer_across_multibyte_characters(tokenizer):
    # The test tokenizer never saw these characters: they become byte-fallback pieces, several
    # per character, and a single piece decodes to an incomplete character.
    text = "the naïve dog ✓ is on the left 😀 end"
    ids = tokenizer.encode(text)
    assert len(ids) > len(text.split())  # byte pieces are involved
    pieces, rest = deltas_of(tokenizer, [*ids, tokenizer.eos_id, *tokenizer.encode("ignored")])
    assert "".join(pieces) + rest == text
    assert not any(REPLACEMENT in piece for piece in pieces)


def test_whitespace_is_held_back_until_text_follows(tokenizer):
    ids = tokenizer.encode("red  ")
    pieces, rest = deltas_of(tokenizer, ids)
    assert "".join(pieces) == "red" and rest == ""
    pieces, rest = deltas_of(tokenizer, tokenizer.encode("red  ") + tokenizer.encode("circle"))
    assert (
        "".join(pieces) + rest
        == tokenizer.decode(tokenizer.encode("red  ") + tokenizer.encode("circle")).strip()
    )
