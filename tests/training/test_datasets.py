"""GT builders and readers: hand-built layouts with known answers, plus the real annotation fixtures."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from soundlens.models.errors import SoundLensError
from soundlens.training import datasets
from soundlens.training.datasets import gt as gtm

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"real annotation fixtures not found at {FIXTURES} (they are never shipped with the repository)")
ANN = FIXTURES / "annotations"
CORRUPT_IDS = {"Db6Hjt0x28k_000056", "5VCZHHd4UKI_000098", "Fot4v0DdGyE_000020", "sYIymaJi6tc_000090",
               "qLVjaU5V9f0_000150", "7Soo7mXCnq0_000063", "pbVP6Z1c4_k_000420", "-ANxUxvGASw_000010",
               "2xBIHi3oqy4_000030", "P-NCCepeHdI_000125", "MKC9LvRivTM_000030", "REDLY6m3Muw_000042"}


# ---------------------------------------------------------------- GT maps

def test_flickr_consensus_map_by_hand():
    # two annotators, 256-frame boxes -> int(224 v / 256): [54, 90, 157, 145] and [51, 91, 154, 150]
    m = gtm.flickr_consensus_map([[62, 103, 180, 166], [59, 105, 176, 172]])
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 0.5, 1.0}
    assert int((m == 1).sum()) == (145 - 91) * (154 - 54)  # both boxes
    assert (m[100, 100], m[90, 55], m[147, 100], m[0, 0]) == (1.0, 0.5, 0.5, 0.0)
    three = gtm.flickr_consensus_map([[0, 0, 256, 256]] * 3)
    assert three.min() == 1.0  # 3 / 2 clipped at 1


def test_vggss_union_map_and_clip_rules():
    box = [0.403125, 0.253125, 0.6, 0.75]  # -> x 90..134, y 56..168
    m = gtm.union_map([box])
    assert m.sum() == (168 - 56) * (134 - 90) and m[56, 90] == 1 and m[55, 90] == 0 and m[167, 133] == 1
    overlapping = gtm.union_map([box, box])
    assert overlapping.max() == 1.0  # binary union
    corrupt = [0.396875, 0.6625, -2.8823037615171176e16, 0.984375]
    for rule in ("clip", "max0"):
        assert gtm.union_map([corrupt], rule).sum() == 0  # x2 -> 0: empty box
    beyond = [0.5, 0.5, 1.2, 1.0]  # no upper clip under max0, but slicing saturates
    np.testing.assert_array_equal(gtm.union_map([beyond], "clip"), gtm.union_map([beyond], "max0"))
    assert gtm.normalised_box_pixels(beyond, "max0")[2] == int(224 * 1.2)
    with pytest.raises(ValueError):
        gtm.union_map([box], "round")


def test_parse_flickr_xml(tmp_path):
    xml = ("<annotation><file>1.jpg</file>"
           "<object><bbox><annotator>1</annotator><xmin>62</xmin><ymin>103</ymin><xmax>180</xmax><ymax>166</ymax></bbox>"
           "<bbox><annotator>2</annotator><xmin>59</xmin><ymin>105</ymin><xmax>176</xmax><ymax>172</ymax></bbox></object>"
           "<object><bbox><a>3</a><b>0</b><c>0</c><d>10</d><e>10</e></bbox></object></annotation>")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "2766580444.xml").write_text(xml)
    boxes = gtm.parse_flickr_xml(tmp_path / "Annotations" / "2766580444.xml")
    assert boxes == [[62, 103, 180, 166], [59, 105, 176, 172], [0, 0, 10, 10]]
    ann = datasets.load_annotations(tmp_path)  # a directory holding Annotations/*.xml
    assert ann.kind == "flickr" and ann.ids == ["2766580444"]
    np.testing.assert_array_equal(ann.gt_map("2766580444"), gtm.flickr_consensus_map(boxes))


# ---------------------------------------------------------------- annotation files

@needs_fixtures
def test_real_vggss_json():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann = datasets.load_vggss_json(ANN / "vggss" / "vggss.json")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "12 boxes in 12 samples have corrupt" in messages[0]
    assert "2 samples have an all-zero GT" in messages[1]
    assert len(ann) == 5158 and len(ann.classes()) == 221
    assert len(ann.corrupt_boxes) == 12 and {i for i, _ in ann.corrupt_boxes} == CORRUPT_IDS
    # kept, with all-zero maps: MKC9... holds only a corrupt box (§3.2); M1P1xla8rg0_000000 holds
    # only the degenerate box [0.26875, 1.0, 0.753125, 1.0] (zero height), a case §3.2 does not list
    assert ann.empty_gt == ["M1P1xla8rg0_000000", "MKC9LvRivTM_000030"]
    assert ann.gt_map("MKC9LvRivTM_000030").sum() == 0 == ann.gt_map("M1P1xla8rg0_000000", "max0").sum()
    assert ann.gt_map("Db6Hjt0x28k_000056").sum() > 0  # its other box is valid
    assert ann.gt_map("zpWuikVorYg_000032").sum() == 112 * 44
    assert ann.class_of("zpWuikVorYg_000032") == "elk bugling"
    empty_boxes = sum(gtm.box_is_empty(b) for e in ann.entries.values() for b in e.boxes)
    assert empty_boxes == 18  # 12 corrupt + 6 degenerate (§3.2)
    for sample_id in list(ann.ids)[::25] + sorted(CORRUPT_IDS):  # the two repo rules agree
        np.testing.assert_array_equal(ann.gt_map(sample_id, "clip"), ann.gt_map(sample_id, "max0"))


@needs_fixtures
def test_real_flickr_boxes_json():
    ann = datasets.load_annotations(ANN / "flickr" / "flickr_test249_boxes_256.json")
    assert ann.kind == "flickr" and len(ann) == 249 and "3908875357" not in ann and not ann.empty_gt
    m = ann.gt_map("2766580444")
    assert int((m == 1).sum()) == (145 - 91) * (154 - 54)


@needs_fixtures
def test_real_avsbench_box_json():
    s4 = datasets.load_annotations(ANN / "avsbench" / "s4_box.json", warn=False)
    assert s4.kind == "pixels" and len(s4) == 3700
    assert s4.class_of("0d9u2CymIxc_1") == "helicopter"
    assert s4.gt_map("0d9u2CymIxc_1").sum() == (140 - 72) * (196 - 21)
    assert len(s4.empty_gt) == 6  # degenerate boxes
    with pytest.warns(UserWarning, match="all-zero GT"):
        ms3 = datasets.load_annotations(ANN / "avsbench" / "ms3_box.json")
    assert len(ms3) == 320 and len(ms3.empty_gt) == 29 and "rq5RDUm2Hnk_1.mp4_1" in ms3.empty_gt


def test_load_annotations_detects_forms(tmp_path):
    records = [{"file": "scene_0001", "class": "drum", "bbox": [[0.0, 0.0, 0.5, 0.5]]},
               {"file": "scene_0002", "class": "bell", "bbox": []}]  # a silent scene
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "annotations.json").write_text(json.dumps(records, indent=1))
    ann = datasets.load_annotations(bench)  # procedural benchmark directory
    assert ann.kind == "normalised" and ann.gt_map("scene_0001").sum() == 112 * 112
    assert ann.silent == ["scene_0002"] and ann.empty_gt == []
    gts = ann.gt_maps(silent_as_none=True)
    assert gts["scene_0002"] is None and gts["scene_0001"].shape == (224, 224) and "scene_0003" not in gts
    (tmp_path / "flickr.json").write_text(json.dumps({"7": [[0, 0, 128, 128], [0, 0, 128, 128]]}))
    assert datasets.load_annotations(tmp_path / "flickr.json").gt_map("7").sum() == 112 * 112
    (tmp_path / "empty").mkdir()
    with pytest.raises(SoundLensError, match="annotations.json"):
        datasets.load_annotations(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SoundLensError, match="unrecognised"):
        datasets.load_annotations(tmp_path / "bad.json")


# ---------------------------------------------------------------- frames/ + audio/ folder

def _write_clip(root: Path, stem: str, rate: int = 16000, channels: int = 1, color=(200, 10, 10)) -> None:
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(root / "frames" / f"{stem}.jpg", quality=100)
    t = np.arange(rate // 10) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(root / "audio" / f"{stem}.wav", np.stack([wave] * channels, axis=1), rate)


def test_folder_intersection_and_items(tmp_path):
    _write_clip(tmp_path, "aaaaaaaaaaa_000001")
    _write_clip(tmp_path, "bbbbbbbbbbb_2000_12000", rate=22050, channels=2)  # SSL-Align naming
    (tmp_path / "frames" / "ccccccccccc_000003.jpg").write_bytes(b"")  # no audio: not available
    (tmp_path / "list.csv").write_text("aaaaaaaaaaa_000001,0\r\nbbbbbbbbbbb_000002,1\r\n"
                                       "ddddddddddd_000004,2\r\n")
    ann = datasets.vggss_from_list([{"file": "aaaaaaaaaaa_000001", "class": "dog", "bbox": [[0, 0, 0.5, 1]]}])
    ds = datasets.AudioVisualFolder(tmp_path, tmp_path / "list.csv", annotations=ann)
    assert ds.ids == ["aaaaaaaaaaa_000001", "bbbbbbbbbbb_000002"] and ds.missing == ["ddddddddddd_000004"]
    a, b = ds[0], ds[1]
    assert a["frame"].dtype == np.uint8 and a["frame"].shape == (24, 32, 3) and a["frame"][0, 0, 0] > 150
    assert a["waveform"].dtype == np.float32 and a["waveform"].shape == (1600,) and a["sample_rate"] == 16000
    assert a["gt"].shape == (224, 224) and a["gt"].sum() == 112 * 224 and a["class"] == "dog"
    assert b["gt"] is None and b["class"] is None and b["sample_rate"] == 22050 and b["waveform"].ndim == 1
    assert len(datasets.AudioVisualFolder(tmp_path)) == 2  # no list: every clip with both files
    with pytest.raises(SoundLensError, match="frames"):
        datasets.AudioVisualFolder(tmp_path / "nowhere")


@needs_fixtures
def test_real_vggss_mini_clips():
    mini = FIXTURES / "vggss_mini"
    ann = datasets.load_vggss_json(mini / "vggss_mini.json")
    ds = datasets.AudioVisualFolder(mini, mini / "vggss_mini_test.csv", annotations=ann)
    assert len(ds) == 7 and not ds.missing
    item = ds[ds.ids.index("3qesirWAGt4_000020")]
    assert item["frame"].shape == (720, 1280, 3) and item["sample_rate"] == 16000
    assert item["waveform"].dtype == np.float32 and abs(len(item["waveform"]) - 160128) < 16
    assert item["class"] == "dog barking"
    np.testing.assert_array_equal(item["gt"], gtm.union_map([[0.328125, 0.025, 0.78125, 0.7875]]))


# ---------------------------------------------------------------- AVSBench

@needs_fixtures
def test_real_avsbench_meta():
    s4 = datasets.read_s4_meta(ANN / "avsbench" / "s4_meta_data.csv")
    ms3 = datasets.read_ms3_meta(ANN / "avsbench" / "ms3_meta_data.csv")
    assert (len(s4) == 4932 and sum(v.split == "test" for v in s4) == 740
            and len({v.category for v in s4}) == 23)
    assert s4[1] == datasets.AVSVideo("0d9u2CymIxc", "test", "helicopter", 0)
    assert len(ms3) == 424 and sum(v.split == "train" for v in ms3) == 296 and ms3[0].category is None


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_avsbench_s4_and_ms3_layouts(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    s4 = tmp_path / "Single-source"
    s4.mkdir()
    (s4 / "s4_meta_data.csv").write_text("name,start,category,split\nvid1,0,dog,test\nvid2,0,dog,train\n")
    for k in range(1, 6):
        _png(s4 / f"s4_data/visual_frames/test/dog/vid1/vid1_{k}.png", rgb)
        _png(s4 / f"s4_data/gt_masks/test/dog/vid1/vid1_{k}.png", mask)
    (s4 / "s4_data/audio_wav/test/dog").mkdir(parents=True)
    sf.write(s4 / "s4_data/audio_wav/test/dog/vid1.wav", np.zeros(16000), 16000)
    ds = datasets.AVSBenchS4(s4, "test")
    assert len(ds) == 1
    item = ds[0]
    assert item["frames"].shape == (5, 8, 8, 3) and item["masks"].shape == (5, 8, 8)
    assert item["masks"][0].sum() == 32 and item["class"] == "dog" and item["sample_rate"] == 16000

    ms3 = tmp_path / "Multi-sources"
    ms3.mkdir()
    (ms3 / "ms3_meta_data.csv").write_text("video_id,split\nclipA_3,val\n")
    palette = np.zeros((8, 8), np.uint8)
    palette[:, :2] = 1  # palette index 1 = foreground
    for k in range(1, 6):
        _png(ms3 / f"ms3_data/visual_frames/clipA_3/clipA_3.mp4_{k}.png", rgb)
        img = Image.fromarray(palette, "P")
        img.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
        (ms3 / "ms3_data/gt_masks/val/clipA_3").mkdir(parents=True, exist_ok=True)
        img.save(ms3 / f"ms3_data/gt_masks/val/clipA_3/clipA_3_{k}.png")
    item = datasets.AVSBenchMS3(ms3, "val", load_audio=False)[0]
    assert item["masks"].shape == (5, 8, 8) and item["masks"][2].sum() == 16 and item["waveform"] is None
    with pytest.raises(SoundLensError, match="audio"):
        datasets.AVSBenchMS3(ms3, "val")[0]
    with pytest.raises(SoundLensError, match="split"):
        datasets.AVSBenchMS3(ms3, "dev")


def test_warnings_can_be_silenced():
    records = [{"file": "x", "class": "c", "bbox": [[0.1, 0.1, -3e16, 0.5]]}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ann = datasets.vggss_from_list(records, warn=False)
    assert ann.empty_gt == ["x"] and ann.corrupt_boxes == [("x", 0)]
