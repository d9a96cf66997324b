"""Split hygiene on hand-built lists in every form, plus the real VGG-SS / Flickr lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from soundlens.tools.main import main
from soundlens.training import splits

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"real annotation fixtures not found at {FIXTURES} (they are never shipped with the repository)")
VGGSS = FIXTURES / "annotations" / "vggss"
FLICKR = FIXTURES / "annotations" / "flickr"


@pytest.mark.parametrize(("token", "expected"), [
    ("zpWuikVorYg_000032", "zpWuikVorYg_000032"),
    ("zpWuikVorYg_32000_42000", "zpWuikVorYg_000032"),  # SSL-Align naming (§2.4)
    ("pbVP6Z1c4_k_420000_430000", "pbVP6Z1c4_k_000420"),  # an underscore inside the YouTube id
    ("pbVP6Z1c4_k_000420", "pbVP6Z1c4_k_000420"),
    ("  zpWuikVorYg_000032.mp4 ", "zpWuikVorYg_000032"),
    ("frames/2432219254.jpg", "2432219254"),
    ("10000130166", "10000130166"),
    ('"3908875357.wav"', "3908875357"),
])
def test_normalize_id(token, expected):
    assert splits.normalize_id(token) == expected


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_read_every_line_form(tmp_path):
    forms = {
        "plain.txt": "aaaaaaaaaaa_000001\nbbbbbbbbbbb_000002\n",
        "crlf.csv": "aaaaaaaaaaa_000001,12\r\nbbbbbbbbbbb_000002,0\r\n",
        "jpg.txt": "aaaaaaaaaaa_000001.jpg\nbbbbbbbbbbb_000002.jpg",
        "mp4.csv": "aaaaaaaaaaa_000001.mp4,dog barking\nbbbbbbbbbbb_000002.mp4,cat\n",
        "header.csv": "video,audio,label\naaaaaaaaaaa_000001,zzzzzzzzzzz_000009,non-sounding\n\n"
                      "bbbbbbbbbbb_000002,x,y\n",
        "ms.txt": "aaaaaaaaaaa_1000_11000\nbbbbbbbbbbb_2000_12000\n",
    }
    for name, text in forms.items():
        assert (splits.read_id_list(write(tmp_path / name, text)).ids
                == ["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002"]), name
    records = [{"file": "aaaaaaaaaaa_000001", "class": "a", "bbox": []}, {"file": "bbbbbbbbbbb_000002"}]
    (tmp_path / "v.json").write_text(json.dumps(records))
    assert splits.read_id_list(tmp_path / "v.json").ids == ["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002"]


def test_check_split_and_write_clean_keep_the_format(tmp_path):
    train = write(tmp_path / "train.csv", "id,label\r\nk1,0\r\nt1.jpg,1\r\nk2,2\r\nt2,3\r\nt1,4\r\n")
    test = write(tmp_path / "test.txt", "t1\nt2\nt3\n")
    report = splits.check_split(train, test)
    assert (report.n_train_records, report.n_train_unique, report.n_test_unique) == (5, 4, 3)
    assert report.overlap == ["t1", "t2"]
    removed = splits.write_clean(train, set(report.overlap), tmp_path / "clean.csv")
    assert removed == 3
    assert (tmp_path / "clean.csv").read_bytes() == b"id,label\r\nk1,0\r\nk2,2\r\n"
    with pytest.raises(Exception, match="overwrite"):
        splits.write_clean(train, {"t1"}, train)


def test_write_clean_json(tmp_path):
    records = [{"file": "a", "class": "x", "bbox": [[0, 0, 1, 1]]}, {"file": "b", "class": "y", "bbox": []}]
    (tmp_path / "train.json").write_text(json.dumps(records))
    assert splits.write_clean(tmp_path / "train.json", {"b"}, tmp_path / "out.json") == 1
    assert json.loads((tmp_path / "out.json").read_text()) == records[:1]


def test_cli_check_split(tmp_path, capsys):
    train = write(tmp_path / "train.txt", "a\nb\nc\n")
    test = write(tmp_path / "test.txt", "b\n")
    out = tmp_path / "clean.txt"
    assert main(["data", "check-split", str(train), "--test", str(test), "--write-clean", str(out)]) == 0
    text = capsys.readouterr().out
    assert "overlap: 1 training ids are test ids" in text and "e.g. b" in text
    assert out.read_text() == "a\nc\n"
    assert main(["data", "check-split", str(train), "--test", str(test), "--strict"]) == 1
    assert main(["data", "check-split", str(tmp_path / "nope.txt"), "--test", str(test)]) == 2


@needs_fixtures
def test_real_vggss_lists_agree():
    report = splits.check_split(VGGSS / "vggss_test.csv", VGGSS / "vggss.json")
    assert report.n_train_records == report.n_test_unique == report.n_overlap == 5158
    silent = splits.read_id_list(VGGSS / "vggss_test_plus_silent.csv")
    assert silent.line_ids[0] is None  # the header `video,audio,label`
    assert len(silent.ids) == len(set(silent.ids)) == 5158  # first column: the frame's clip
    assert splits.check_split(silent, VGGSS / "vggss.json").n_overlap == 4779


@needs_fixtures
def test_real_flickr_lists_and_the_typo_id():
    typo = splits.read_id_list(FLICKR / "flickr_test_250_with_typo.csv")
    report = splits.check_split(typo, FLICKR / "flickr_test.csv")
    assert (report.n_train_unique, report.n_test_unique, report.n_overlap) == (250, 249, 249)
    assert "3908875350" in typo.ids and "3908875350" not in report.overlap


@needs_fixtures
def test_mixed_format_list_against_real_vggss_test(tmp_path):
    test_ids = splits.read_id_list(VGGSS / "vggss_test.csv").ids
    a, b, c, d = test_ids[0], test_ids[1], test_ids[100], test_ids[5000]
    yt, start = d.rsplit("_", 1)
    lines = [
        f"{a}.mp4,elk bugling\r\n",  # VGGSound test.csv form
        f"{b}.jpg,x\r\n",
        "notatestid_000001.mp4,dog\r\n",
        f"{c},3\r\n",
        f"{yt}_{int(start) * 1000}_{int(start) * 1000 + 10000},9\r\n",  # SSL-Align naming of d
        "zzzzzzzzzzz_000000,1\r\n",
    ]
    train = write(tmp_path / "train.csv", "".join(lines))
    report = splits.check_split(train, VGGSS / "vggss_test.csv")
    assert report.overlap == [a, b, c, d]
    out = tmp_path / "clean.csv"
    assert main(["data", "check-split", str(train), "--test", str(VGGSS / "vggss_test.csv"),
                 "--write-clean", str(out)]) == 0
    assert out.read_bytes() == (lines[2] + lines[5]).encode()
