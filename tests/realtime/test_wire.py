"""soundlens.v1 encode/decode: every header field round-trips, every malformation is a WireError."""

from __future__ import annotations

import json

import numpy as np
import pytest
from soundlens.realtime import wire


def result_header(**extra) -> dict:
    header = {
        "session": "0123456789abcdef0123456789abcdef",
        "seq": 41,
        "stream": "cam0",
        "inference": 17,
        "stamp_ns": 1_732_240_000_123_456_789,
        "mono_ns": {"capture": 91_234_567_890_123, "infer_start": 91_234_569_890_123,
                    "infer_end": 91_234_570_000_000, "publish": 91_234_577_990_123},
        "frame": {"index": 5123, "width": 1280, "height": 720, "media_s": 12.5},
        "audio": {"sample_rate": 16000, "first_sample": 245_760_000, "num_samples": 48000},
        "model": {"id": "runs/lite.safetensors", "method": "ezvsl"},
        "peaks": [{"u": 0.412, "v": 0.385, "x": 527.36, "y": 277.2, "score": 1.0},
                  {"u": 0.9, "v": 0.1, "x": 1152.0, "y": 72.0, "score": 0.25}],
        "heatmap": {"range": [-3.5, 12.25], "region": [0.0, 0.0, 1280.0, 720.0]},
    }
    header.update(extra)
    return header


def roundtrip(kind, stream, header, buffers=None) -> wire.Message:
    parts = wire.encode(kind, stream, header, buffers)
    return wire.decode([bytes(p) for p in parts])


def test_heatmap_roundtrip_keeps_every_field():
    heat = np.random.default_rng(0).random((7, 7), dtype=np.float32)
    header = result_header()
    msg = roundtrip("heatmap", "cam0", header, {"heatmap": heat})
    assert msg.topic == "soundlens.v1.heatmap.cam0"
    assert (msg.kind, msg.stream) == ("heatmap", "cam0")
    for key, value in header.items():
        assert msg.header[key] == value, key
    assert msg.header["schema"] == "soundlens.heatmap"
    assert msg.header["version"] == [wire.MAJOR, wire.MINOR] == [1, 3]
    assert msg.header["buffers"] == [{"name": "heatmap", "dtype": "<f4", "shape": [7, 7], "encoding": "raw"}]
    assert msg.seq == 41 and msg.session == header["session"]
    np.testing.assert_array_equal(msg.arrays["heatmap"], heat)
    assert not msg.arrays["heatmap"].flags.writeable  # zero-copy view of the received frame


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "|u1", "<i4", "<u2", "|b1", ">f4", ">i2"])
def test_buffers_of_every_numeric_dtype(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 2 if dtype == "|b1"
             else np.arange(24).reshape(2, 3, 4)).astype(dtype)
    msg = roundtrip("heatmap", "s", result_header(stream="s"), {"a": array, "b": array[:, :, 0].T})
    np.testing.assert_array_equal(msg.arrays["a"], array)
    np.testing.assert_array_equal(msg.arrays["b"], array[:, :, 0].T)
    # big-endian input goes out little-endian (or byte-order-free), as the protocol promises
    assert msg.header["buffers"][0]["dtype"][0] in "<|"


def test_jpeg_bytes_and_empty_buffers():
    jpeg = b"\xff\xd8\xff\xe0fake jpeg\xff\xd9"
    msg = roundtrip("preview", "cam0", result_header(), {"jpeg": jpeg, "empty": np.zeros((0, 3), np.float32)})
    assert msg.header["buffers"][0] == {"name": "jpeg", "dtype": "|u1", "shape": [len(jpeg)],
                                        "encoding": "jpeg"}
    assert msg.arrays["jpeg"].tobytes() == jpeg
    assert msg.arrays["empty"].shape == (0, 3)


def test_meta_and_status_roundtrip():
    meta = {"session": "s1", "seq": 0, "stamp_ns": 5, "mono_ns": {"publish": 9},
            "model": {"id": "x", "config": {"dim": 512}}, "heatmap": {"shape": [7, 7]}}
    msg = roundtrip("meta", "cam0", meta)
    assert msg.header["model"] == meta["model"] and msg.arrays == {}
    status = {"session": "s1", "seq": 3, "stamp_ns": 5, "mono_ns": {"publish": 9}, "stream": "cam0",
              "latency_ms": {"inference": {"p50": None, "n": 0}}}
    msg = roundtrip("status", None, status)
    assert msg.topic == "soundlens.v1.status" and msg.stream is None
    assert msg.header["latency_ms"] == status["latency_ms"] and msg.header["stream"] == "cam0"


def test_topics():
    assert wire.topic("peaks", "robot_1-left") == "soundlens.v1.peaks.robot_1-left"
    assert wire.parse_topic("soundlens.v1.meta.cam0") == ("meta", "cam0")
    assert wire.parse_topic("soundlens.v1.status") == ("status", None)
    for bad in ("soundlens.v2.heatmap.cam0", "other.v1.heatmap.cam0", "soundlens.v1.nope.cam0",
                "soundlens.v1.heatmap", "soundlens.v1.heatmap.a.b", "soundlens.v1.status.cam0"):
        with pytest.raises(wire.WireError):
            wire.parse_topic(bad)
    for bad in ("", "has.dot", "sp ace", "x" * 65):
        with pytest.raises(wire.WireError, match="stream name"):
            wire.topic("heatmap", bad)


def test_encode_refuses_what_other_languages_cannot_read():
    with pytest.raises(wire.WireError, match="finite"):
        wire.encode("peaks", "cam0",
                    result_header(peaks=[{"u": float("nan"), "v": 0, "x": 0, "y": 0, "score": 1}]))
    with pytest.raises(wire.WireError, match="dtype"):
        wire.encode("heatmap", "cam0", result_header(), {"h": np.array(["text"])})
    with pytest.raises(wire.WireError, match="lacks 'audio'"):
        header = result_header()
        del header["audio"]
        wire.encode("heatmap", "cam0", header)


def good_parts() -> list[bytes]:
    return [bytes(p) for p in wire.encode("heatmap", "cam0", result_header(),
                                          {"heatmap": np.ones((2, 3), np.float32)})]


def with_header(change) -> list[bytes]:
    parts = good_parts()
    header = json.loads(parts[1])
    change(header)
    parts[1] = json.dumps(header).encode()
    return parts


MALFORMED = {
    "one frame": lambda: good_parts()[:1],
    "no frames": lambda: [],
    "binary topic": lambda: [b"\xff\xfe", *good_parts()[1:]],
    "unknown kind": lambda: [b"soundlens.v1.video.cam0", *good_parts()[1:]],
    "header not JSON": lambda: [good_parts()[0], b"{not json", *good_parts()[2:]],
    "header not UTF-8": lambda: [good_parts()[0], b"\xff\xff", *good_parts()[2:]],
    "header a list": lambda: [good_parts()[0], b"[1, 2]", *good_parts()[2:]],
    "major 2": lambda: with_header(lambda h: h.update(version=[2, 0])),
    "version text": lambda: with_header(lambda h: h.update(version="1.0")),
    "schema mismatch": lambda: with_header(lambda h: h.update(schema="soundlens.peaks")),
    "seq missing": lambda: with_header(lambda h: h.pop("seq")),
    "seq negative": lambda: with_header(lambda h: h.update(seq=-1)),
    "seq bool": lambda: with_header(lambda h: h.update(seq=True)),
    "seq float": lambda: with_header(lambda h: h.update(seq=1.5)),
    "session empty": lambda: with_header(lambda h: h.update(session="")),
    "stream mismatch": lambda: with_header(lambda h: h.update(stream="cam1")),
    "capture missing": lambda: with_header(lambda h: h["mono_ns"].pop("capture")),
    "peak not object": lambda: with_header(lambda h: h.update(peaks=[3])),
    "peak without score": lambda: with_header(lambda h: h["peaks"][0].pop("score")),
    "zero sample rate": lambda: with_header(lambda h: h["audio"].update(sample_rate=0)),
    "dtype object": lambda: with_header(lambda h: h["buffers"][0].update(dtype="|O")),
    "dtype garbage": lambda: with_header(lambda h: h["buffers"][0].update(dtype="float99")),
    "shape negative": lambda: with_header(lambda h: h["buffers"][0].update(shape=[-2, 3])),
    "encoding unknown": lambda: with_header(lambda h: h["buffers"][0].update(encoding="png")),
    "buffer missing": lambda: good_parts()[:2],
    "extra buffer": lambda: [*good_parts(), b"1234"],
    "truncated buffer": lambda: [*good_parts()[:2], good_parts()[2][:-1]],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_decode_rejects_malformed_with_a_reason(case):
    with pytest.raises(wire.WireError) as info:
        wire.decode(MALFORMED[case]())
    assert str(info.value)  # a reason a person can read


def test_unknown_keys_are_ignored():
    parts = with_header(lambda h: h.update(future_field={"x": 1}))
    assert wire.decode(parts).header["future_field"] == {"x": 1}


# --- 1.1: 64-bit-safe stamps and the single-frame latest form --------------------------------
def test_stamp_strings_survive_a_double_based_json_parser():
    """JavaScript's JSON.parse (and parse_int=float here) rounds stamp_ns; the string form is exact."""
    stamp = 1_765_000_000_123_456_789  # a 2025 wall clock in ns: far above 2**53
    mono = {"capture": 2**53 + 1, "infer_start": 2**53 + 3, "infer_end": 2**53 + 5, "publish": 2**53 + 7}
    parts = wire.encode("peaks", "cam0", result_header(stamp_ns=stamp, mono_ns=mono))
    latest = wire.encode_latest("peaks", "cam0", result_header(stamp_ns=stamp, mono_ns=mono))
    for text in (bytes(parts[1]), latest.partition(b" ")[2]):
        as_double = json.loads(text, parse_int=float)  # every number a double, as in JavaScript
        assert as_double["stamp_ns"] != stamp  # the integer form does not survive ...
        assert int(as_double["stamp_ns_str"]) == stamp  # ... the string form does, exactly
        assert as_double["stamp_s"] == pytest.approx(stamp / 1e9, abs=1e-6)  # display: microseconds
        assert {k: int(v) for k, v in as_double["mono_ns_str"].items()} == mono
        assert as_double["mono_ns"]["capture"] != mono["capture"]
    exact = wire.decode([bytes(p) for p in parts]).header
    assert exact["stamp_ns"] == stamp and exact["stamp_ns_str"] == str(stamp)  # the integer stays


def test_stamp_string_that_disagrees_is_rejected():
    parts = with_header(lambda h: h.update(stamp_ns_str="12"))
    with pytest.raises(wire.WireError, match="stamp_ns_str"):
        wire.decode(parts)


def test_latest_form_carries_the_same_header_in_one_frame():
    heat = np.random.default_rng(1).random((4, 9), dtype=np.float32)  # h=4 rows, w=9 columns
    header = result_header()
    frame = wire.encode_latest("heatmap", "cam0", header, {"heatmap": heat})
    topic, space, body = frame.partition(b" ")
    assert (topic, space) == (b"soundlens.latest.v1.heatmap.cam0", b" ")
    msg = wire.decode([frame])
    assert msg.latest and (msg.kind, msg.stream, msg.topic) == ("heatmap", "cam0", topic.decode())
    assert msg.header["buffers"] == [] and msg.seq == 41
    np.testing.assert_array_equal(msg.arrays["heatmap"], heat)  # exact through JSON text
    assert msg.arrays["heatmap"].shape == (4, 9) and len(json.loads(body)["heatmap"]["data"]) == 4
    multipart = wire.decode([bytes(p) for p in wire.encode("heatmap", "cam0", header, {"heatmap": heat})])
    same = {k: v for k, v in msg.header.items() if k != "heatmap"}
    assert same == {k: v for k, v in multipart.header.items()
                    if k not in ("heatmap", "buffers")} | {"buffers": []}
    assert msg.localization().peaks == multipart.localization().peaks
    status = wire.decode([wire.encode_latest("status", None, {"session": "a", "seq": 3, "stamp_ns": 5,
                                                              "mono_ns": {"publish": 6}})])
    assert status.topic == "soundlens.latest.v1.status" and status.stream is None


def test_latest_subscription_with_its_space_matches_one_stream_exactly():
    prefix = (wire.latest_topic("peaks", "cam0") + " ").encode()
    assert wire.encode_latest("peaks", "cam0", result_header()).startswith(prefix)
    assert not wire.encode_latest("peaks", "cam01", result_header(stream="cam01")).startswith(prefix)
    with pytest.raises(wire.WireError, match="no latest form"):
        wire.latest_topic("preview", "cam0")


@pytest.mark.parametrize("frame", [
    b"soundlens.latest.v1.peaks.cam0",  # no header
    b"soundlens.latest.v1.peaks.cam0 {not json",
    b"soundlens.latest.v1.preview.cam0 {}",  # previews have no latest form
    b"soundlens.v1.peaks.cam0 {}",  # a multipart topic in one frame
    b'soundlens.latest.v1.heatmap.cam0 ' + json.dumps({**result_header(), "schema": "soundlens.heatmap",
                                                       "version": [1, 2], "buffers": []}).encode(),  # no data
])
def test_malformed_latest_frames_are_rejected(frame):
    with pytest.raises(wire.WireError):
        wire.decode([frame])


def test_results_say_how_many_hops_and_frames_were_skipped():
    msg = roundtrip("peaks", "cam0", result_header(hops_skipped=3, frames_skipped=7))
    loc = msg.localization()
    assert (loc.hops_skipped, loc.frames_skipped) == (3, 7)
    old = roundtrip("peaks", "cam0", result_header())  # a 1.0 publisher sends neither
    assert (old.localization().hops_skipped, old.localization().frames_skipped) == (0, 0)
