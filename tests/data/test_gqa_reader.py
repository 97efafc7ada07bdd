from data_fixtures import write_image, write_json

from minigptv2.data.gqa import GQA
from minigptv2.tasks import VQA_TEMPLATES


def test_official_and_lavis_layouts_give_the_same_sample(tmp_path):
    write_image(tmp_path / "images/2354786.jpg", (20, 20))
    official = write_json(
        tmp_path / "official.json",
        {"02930152": {"imageId": "2354786", "question": "Is the sky dark?", "answer": "Yes",
                      "fullAnswer": "Yes, the sky is dark.", "types": {}}},
    )  # fmt: skip
    lavis = write_json(
        tmp_path / "lavis.json",
        [{"image": "2354786.jpg", "question": "Is the sky dark?", "answer": "Yes"}],
    )
    samples = [GQA(path, tmp_path / "images")[0] for path in (official, lavis)]
    assert samples[0].turns == samples[1].turns
    assert samples[0].turns[0].assistant == "yes" and samples[0].source == "gqa"
    assert samples[0].turns[0].user in {t.format("is the sky dark?") for t in VQA_TEMPLATES}
