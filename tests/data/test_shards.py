import pytest
from data_fixtures import image_bytes, write_tar

from minigptv2.data.shards import TarShards
from minigptv2.errors import DataError


def test_samples_are_grouped_by_key_and_incomplete_ones_left_out(tmp_path):
    first = write_tar(
        tmp_path / "00000.tar",
        {
            "a/000.jpg": image_bytes((4, 4)),
            "a/000.txt": b"first",
            "a/001.png": image_bytes((4, 4), "PNG"),  # no caption: left out
            "a/002.txt": b"no image: left out",
            "a/003.webp": image_bytes((4, 4), "WEBP"),
            "a/003.txt": b"third",
        },
    )
    second = write_tar(tmp_path / "00001.tar", {"004.jpg": image_bytes((4, 4)), "004.txt": b"x"})
    shards = TarShards([first, second], ("txt",))
    assert len(shards) == 3
    assert [shards.read(i)[1][0] for i in range(3)] == [b"first", b"third", b"x"]
    assert [shards.key(i) for i in range(3)] == ["00000.tar#0", "00000.tar#1", "00001.tar#0"]
    image, (text,) = shards.read(1)
    assert text == b"third" and image == image_bytes((4, 4), "WEBP")


def test_missing_or_broken_shards_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        TarShards([tmp_path / "nope.tar"], ("txt",))
    (tmp_path / "bad.tar").write_bytes(b"garbage" * 100)
    with pytest.raises(DataError, match="not a readable tar"):
        len(TarShards([tmp_path / "bad.tar"], ("txt",)))
