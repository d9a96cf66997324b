"""Generated bad input (hypothesis) for what reads bytes from the network or disk in realtime/: the
wire decoder, recordings and camera calibrations. Anything gets a clean error, never another
exception or a hang."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from soundlens.models.errors import SoundLensError
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.recording import RecordingReader, pack_frames, unpack_frames
from soundlens.realtime.tracks import load_intrinsics

FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def good_message(kind: str) -> list[bytes]:
    header = {"session": "s" * 32, "seq": 3, "stream": "cam0", "inference": 1, "stamp_ns": 5,
              "mono_ns": {"capture": 1, "infer_start": 2, "infer_end": 3, "publish": 4},
              "frame": {"index": 0, "width": 8, "height": 8, "media_s": 0.1},
              "audio": {"sample_rate": 16000, "first_sample": 0, "num_samples": 10},
              "model": {"id": "m", "method": "ezvsl"},
              "peaks": [{"u": 0.1, "v": 0.2, "x": 1, "y": 2, "score": 1}],
              "activity": {"dbfs": -20.0, "silent": False, "threshold_db": -50.0},
              "on_screen": {"similarity": 0.6, "visible": True, "threshold": 0.5}}
    buffers = {}
    if kind == "heatmap":
        header["heatmap"] = {"range": [0, 1], "region": [0, 0, 8, 8]}
        buffers = {"heatmap": np.ones((7, 7), np.float32)}
    if kind == "tracks":
        header["tracks"] = [{"id": 1, "x": 1.0, "y": 2.0, "u": 0.1, "v": 0.2, "vx": 0.0, "vy": 0.0, "vu": 0.0,
                             "vv": 0.0, "score": 0.9, "age_s": 1.0, "hits": 3, "missed": 0, "azimuth": 1.0,
                             "elevation": -2.0}]
        header["camera"] = "hfov 60"
    return [bytes(p) for p in wire.encode(kind, "cam0", header, buffers)]


def decode_or_skip(parts) -> None:
    """The contract: a Message (whose typed views also work) or WireError, nothing else."""
    try:
        msg = wire.decode(parts)
    except wire.WireError:
        return
    if msg.kind in wire.RESULT_KINDS:
        msg.localization()
    if msg.kind == "tracks":
        wire.decode_tracks(msg)


@FAST
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_any_frames_decode_or_raise_wire_error(parts):
    decode_or_skip(parts)


def mutate(value, path, replacement):
    if not path:
        return replacement
    key, rest = path[0], path[1:]
    if isinstance(value, dict) and value:
        key = sorted(value)[key % len(value)]
        return {**value, key: mutate(value[key], rest, replacement)}
    if isinstance(value, list) and value:
        i = key % len(value)
        return value[:i] + [mutate(value[i], rest, replacement)] + value[i + 1:]
    return replacement


@FAST
@given(st.sampled_from(["heatmap", "peaks", "tracks", "status", "meta"]),
       st.lists(st.integers(0, 50), max_size=4), json_values, st.integers(-3, 3), st.booleans())
def test_mutated_headers_and_cut_buffers_decode_or_raise_wire_error(kind, path, replacement, cut, drop_key):
    parts = good_message(kind)
    header = json.loads(parts[1])
    header = mutate(header, path, replacement)
    if drop_key and isinstance(header, dict) and header and path:
        header.pop(sorted(header)[path[0] % len(header)])
    parts[1] = json.dumps(header, allow_nan=True).encode()
    if len(parts) > 2 and cut:
        parts[2] = parts[2][:cut] if cut < 0 else parts[2] + b"\0" * cut
    decode_or_skip(parts)


@FAST
@given(st.binary(max_size=200))
def test_any_header_bytes_decode_or_raise_wire_error(header):
    decode_or_skip([b"soundlens.v1.heatmap.cam0", header, b"\0" * 196])


def test_the_subscriber_counts_bad_messages_instead_of_dying():
    sub = Subscriber("tcp://127.0.0.1:1")  # never started: _accept is what the receive thread runs
    sub._accept([b"soundlens.v1.tracks.cam0", b'{"schema": "soundlens.tracks"}'], 0)
    sub._accept(good_message("tracks"), 0)
    assert sub.stats.malformed == 1 and sub.stats.received == 1


@FAST
@given(st.binary(max_size=120))
def test_recorded_payloads_unpack_or_raise(data):
    try:
        frames = unpack_frames(data)
    except SoundLensError:
        return
    assert pack_frames(frames) == data


def with_file(data: bytes, suffix: str, read):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{suffix}"
        path.write_bytes(data)
        return read(path)


MCAP_MAGIC = b"\x89MCAP0\r\n"


@SLOW
@given(st.binary(max_size=300), st.booleans())
def test_any_recording_bytes_read_or_raise(data, magic):
    def read(path):
        try:
            list(RecordingReader(path))
        except SoundLensError:
            pass

    with_file((MCAP_MAGIC if magic else b"") + data, ".mcap", read)


@SLOW
@given(st.integers(0, 4000), st.binary(min_size=1, max_size=8))
def test_damaged_real_recordings_read_up_to_the_damage(at, junk):
    def read(path):
        reader = RecordingReader(path)
        for msg in reader:
            wire.decode(msg.parts())  # what survives is intact
        return reader

    reader = with_file(_recording()[:at] + junk, ".mcap", lambda p: _or_error(read, p))
    assert reader is None or not reader.complete or reader.count <= 30


def _or_error(read, path):
    try:
        return read(path)
    except SoundLensError:
        return None


_CACHE: dict = {}


def _recording() -> bytes:
    """A real recording of 30 messages, written by the recorder's own writer path."""
    if "data" not in _CACHE:
        from mcap.writer import CompressionType, Writer
        from soundlens.realtime.recording import ENCODING

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "r.mcap"
            with open(path, "wb") as f:
                writer = Writer(f, chunk_size=600, compression=CompressionType.ZSTD)
                writer.start(profile="soundlens.v1")
                channel = writer.register_channel("soundlens.v1.heatmap.cam0", ENCODING, 0)
                for i in range(30):
                    writer.add_message(channel, log_time=i, publish_time=i,
                                       data=pack_frames(good_message("heatmap")[1:]))
                writer.finish()
            _CACHE["data"] = path.read_bytes()
    return _CACHE["data"]


@SLOW
@given(st.sampled_from([".json", ".yaml", ".xml"]),
       st.binary(max_size=200) | json_values.map(lambda v: json.dumps(
    {"camera_matrix": v, "distortion_coefficients": [0, 0, 0, 0], "image_width": 640}).encode()))
def test_any_calibration_file_loads_or_raises(suffix, data):
    def read(path):
        try:
            load_intrinsics(path)
        except SoundLensError:
            pass

    with_file(data, suffix, read)
