import random

import pytest
from data_fixtures import write_image

from minigptv2.data.flickr30k import Flickr30kEntities, parse_sentence
from minigptv2.errors import DataError
from minigptv2.tasks import GROUNDING_TEMPLATES

SENTENCES = (
    "[/EN#18/people A child] in [/EN#19/clothing a pink dress] is climbing up "
    "[/EN#20/other a set of stairs] in [/EN#21/scene an entry way] .\n"
    "[/EN#18/people A little girl] climbing [/EN#20/other the stairs] .\n"
    "[/EN#20/other Stairs] in [/EN#21/scene a hall] .\n"
)
ANNOTATION = """<annotation>
  <filename>1000092795.jpg</filename>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  <object><name>18</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>260</xmax><ymax>300</ymax></bndbox></object>
  <object><name>19</name><bndbox><xmin>100</xmin><ymin>150</ymin><xmax>200</xmax><ymax>250</ymax></bndbox></object>
  <object><name>19</name><bndbox><xmin>300</xmin><ymin>0</ymin><xmax>499</xmax><ymax>374</ymax></bndbox></object>
  <object><name>20</name><nobndbox>1</nobndbox></object>
  <object><name>21</name><nobndbox>1</nobndbox><scene>1</scene></object>
</annotation>
"""
CHILD = "<p>A child</p> {<2><5><52><80>}"
DRESS = "<p>a pink dress</p> {<20><40><40><66>}<delim>{<60><0><99><99>}"


@pytest.fixture
def entities(tmp_path):
    folder = tmp_path / "flickr30k_entities"
    (folder / "Sentences").mkdir(parents=True)
    (folder / "Annotations").mkdir()
    (folder / "Sentences/1000092795.txt").write_text(SENTENCES)
    (folder / "Annotations/1000092795.xml").write_text(ANNOTATION)
    (folder / "train.txt").write_text("1000092795\n")
    write_image(tmp_path / "images/1000092795.jpg", (500, 375))
    return folder, tmp_path / "images"


def test_sentence_markup_gives_plain_text_and_spans():
    caption, phrases = parse_sentence("[/EN#18/people A man] runs [/EN#0/notvisual today] .")
    assert caption == "A man runs today ."
    assert phrases == [(0, 5, "18"), (11, 16, "0")]


def test_grounded_caption_boxes_every_boxed_phrase(entities):
    reader = Flickr30kEntities(*entities, task="grounding")
    assert len(reader) == 5
    sample = reader[0]
    assert (
        sample.source == "flickr_grounded_caption" and sample.turns[0].user in GROUNDING_TEMPLATES
    )
    assert sample.turns[0].assistant == (
        f"{CHILD} in {DRESS} is climbing up a set of stairs in an entry way ."
    )


def test_caption_to_phrases_and_phrase_to_boxes(entities):
    caption_reader = Flickr30kEntities(*entities, task="caption_to_phrase")
    sample = caption_reader[0]
    assert sample.source == "flickr_CaptionToPhrase" and sample.task == "detection"
    assert sample.turns[0].user == (
        "[detection] A child in a pink dress is climbing up a set of stairs in an entry way ."
    )
    assert sample.turns[0].assistant == f"{CHILD} {DRESS}"

    phrase_reader = Flickr30kEntities(*entities, task="phrase_to_box")
    answers = {
        (s.turns[0].user, s.turns[0].assistant)
        for s in (phrase_reader.build(0, random.Random(seed)) for seed in range(20))
    }
    assert answers == {("[detection] A child", CHILD), ("[detection] a pink dress", DRESS)}
    assert phrase_reader.source == "flickr_ObjectToPhrase"


def test_captions_without_boxed_phrases_and_missing_ones_are_data_errors(entities):
    reader = Flickr30kEntities(*entities, task="grounding")
    with pytest.raises(DataError, match="no boxed phrase"):
        reader[2]
    with pytest.raises(DataError, match="no caption 4"):
        reader[3]
