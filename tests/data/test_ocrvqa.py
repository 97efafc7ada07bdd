from data_fixtures import write_image, write_json

from minigptv2.data.ocrvqa import OCRVQA


def test_one_sample_per_question_of_the_training_split(tmp_path):
    annotation = write_json(
        tmp_path / "dataset.json",
        {
            "151446946": {
                "imageURL": "http://ecx.images-amazon.com/images/I/51p.jpg",
                "questions": ["Who wrote this book?", "What is the genre of this book?"],
                "answers": ["Joe Author", "Travel"],
                "title": "T",
                "genre": "Travel",
                "split": 1,
            },
            "999": {
                "imageURL": "http://x/y.png",
                "questions": ["Q?"],
                "answers": ["A"],
                "split": 2,
            },
        },
    )
    write_image(tmp_path / "images/151446946.jpg", (30, 40))
    reader = OCRVQA(annotation, tmp_path / "images")
    assert len(reader) == 2
    assert [reader[i].turns[0].assistant for i in range(2)] == ["joe author", "travel"]
    assert reader[0].targets["book"] == "151446946" and reader[0].task == "vqa"
