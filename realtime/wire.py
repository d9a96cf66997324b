"""The `soundlens.v1` wire format: the only module that knows bytes (docs/protocol.md mirrors it).

A message is a ZeroMQ multipart message `[topic, header, buffer0, buffer1, ...]`:

* topic: ASCII `soundlens.v1.<kind>.<stream>` (`soundlens.v1.status` has no stream), so SUB
  sockets can filter by prefix;
* header: one UTF-8 JSON object (schema, version, session, seq, stamps, buffer specs...);
* buffers: raw little-endian C-order arrays (or JPEG bytes) described by `header["buffers"]`.

Since 1.2 the `heatmap`, `peaks`, `tracks`, `meta` and `status` messages are also sent in a single-frame
"latest" form, `soundlens.latest.v1.<kind>.<stream> <JSON header>`, for subscribers that set
ZMQ_CONFLATE (which keeps one frame, never a multipart message) and so always read fresh data.
Its topic does not start with `soundlens.v1.`, so a 1.0 subscriber never receives it.

`encode` and `decode` are pure functions; `decode` raises `WireError` naming what is wrong
for anything malformed, so receivers can count and skip instead of crashing.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
from soundlens.models.geometry import CellCentres
from soundlens.realtime.activity import Activity, OnScreen
from soundlens.realtime.result import AudioWindow, FrameInfo, Localization, ModelInfo, Timing, to_peaks

PREFIX = "soundlens"
MAJOR = 1
# 1.1: tracks, activity, on_screen; 1.2: latest topics, stamp strings, skipped hops; 1.3: cell centres
MINOR = 3
# (docs/protocol.md §10)
VERSION = (MAJOR, MINOR)
TOPIC_ROOT = f"{PREFIX}.v{MAJOR}."
LATEST_ROOT = f"{PREFIX}.latest.v{MAJOR}."  # the single-frame form (docs/protocol.md §1.1)

KINDS = ("heatmap", "peaks", "preview", "meta", "status", "tracks")
# one inference publishes these with one `inference` id
RESULT_KINDS = ("heatmap", "peaks", "preview", "tracks")
STREAMLESS_KINDS = ("status",)
# no binary buffer, or a small map that fits in JSON
LATEST_KINDS = ("heatmap", "peaks", "tracks", "meta", "status")
STREAM_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # no dots: a topic prefix must not match across fields
ENCODINGS = ("raw", "jpeg")


class WireError(ValueError):
    """A message that does not follow soundlens.v1; the text says which field and why."""


@dataclass
class Message:
    """One decoded message. `arrays` maps buffer name -> read-only numpy array (JPEG: uint8 bytes)."""

    topic: str
    kind: str
    stream: str | None
    header: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    latest: bool = False  # came in the single-frame `soundlens.latest.v1.` form

    @property
    def seq(self) -> int:
        return self.header["seq"]

    @property
    def session(self) -> str:
        return self.header["session"]

    def localization(self) -> Localization:
        """The typed result a `heatmap`, `peaks` or `preview` message carries (WireError for others)."""
        return decode_localization(self)


def check_stream(stream: str) -> str:
    if not isinstance(stream, str) or not STREAM_RE.match(stream):
        raise WireError(
            f"stream name {stream!r} is invalid: use 1-64 letters, digits, '_' or '-' (no dots), e.g. 'cam0'"
        )
    return stream


def topic(kind: str, stream: str | None = None) -> str:
    """`soundlens.v1.<kind>.<stream>`, or `soundlens.v1.status` for the stream-less status topic."""
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}; kinds are {', '.join(KINDS)}")
    if kind in STREAMLESS_KINDS:
        return TOPIC_ROOT + kind
    return f"{TOPIC_ROOT}{kind}.{check_stream(stream)}"


def latest_topic(kind: str, stream: str | None = None) -> str:
    """`soundlens.latest.v1.<kind>.<stream>`: the single-frame form of a heatmap, peaks, tracks, meta or
    status topic. Subscribe to it followed by one space, which matches this stream exactly."""
    if kind not in LATEST_KINDS:
        raise WireError(f"{kind!r} has no latest form; kinds with one: {', '.join(LATEST_KINDS)}")
    return LATEST_ROOT + topic(kind, stream)[len(TOPIC_ROOT):]


def parse_topic(text: str) -> tuple[str, str | None]:
    """`soundlens.v1.heatmap.cam0` -> ("heatmap", "cam0"); WireError for anything else."""
    if not text.startswith(f"{PREFIX}.v"):
        raise WireError(f"topic {text!r} does not start with '{PREFIX}.v<major>.'")
    parts = text.split(".")
    if parts[1] != f"v{MAJOR}":
        raise WireError(f"topic {text!r} has major version {parts[1]!r}; this reader speaks v{MAJOR}")
    if len(parts) < 3 or parts[2] not in KINDS:
        raise WireError(f"topic {text!r} names no known kind ({', '.join(KINDS)})")
    kind = parts[2]
    if kind in STREAMLESS_KINDS:
        if len(parts) != 3:
            raise WireError(f"topic {text!r}: '{kind}' takes no stream suffix")
        return kind, None
    if len(parts) != 4:
        raise WireError(f"topic {text!r}: expected '{TOPIC_ROOT}{kind}.<stream>'")
    return kind, check_stream(parts[3])


def buffer_spec(name: str, array: np.ndarray, encoding: str = "raw") -> dict:
    return {"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "encoding": encoding}


def _as_wire_array(value) -> tuple[np.ndarray, str]:
    """Bytes become a JPEG-encoded uint8 buffer; arrays are made little-endian and C-contiguous."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), dtype=np.uint8), "jpeg"
    array = np.asarray(value)
    if array.dtype.hasobject or array.dtype.kind not in "biuf":
        raise WireError(f"cannot send dtype {array.dtype}: only bool, integer and float arrays travel raw")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array), "raw"


def encode(kind: str, stream: str | None, header: dict, buffers: dict | None = None) -> list:
    """Frames of one message. `header` must hold the fields `validate_header` asks for, except
    `schema`, `version` and `buffers`, which are filled in here. `buffers` maps name -> array or
    JPEG bytes; arrays go out zero-copy (keep them unchanged until sent)."""
    frames_out = []
    specs = []
    for name, value in (buffers or {}).items():
        array, encoding = _as_wire_array(value)
        specs.append(buffer_spec(name, array, encoding))
        frames_out.append(array.data if array.size else b"")
    text = _header_json(kind, stream, header, specs)
    return [topic(kind, stream).encode("ascii"), text.encode("utf-8"), *frames_out]


def encode_latest(kind: str, stream: str | None, header: dict, buffers: dict | None = None) -> bytes:
    """The single-frame form of the same message: `<latest topic> <JSON header>`, with no buffer
    frames (`buffers` is []); a heatmap travels as `heatmap.data`, h rows of w numbers."""
    latest = latest_topic(kind, stream)  # checks kind and stream
    header = dict(header)
    if kind == "heatmap":
        heat = np.asarray((buffers or {})["heatmap"], dtype=np.float32)
        if heat.ndim != 2:
            raise WireError(f"a heatmap is [h, w]; got shape {list(heat.shape)}")
        # float32 -> Python float is exact, and JSON writes the shortest text that reads back exactly
        header["heatmap"] = {**header.get("heatmap", {}), "data": heat.tolist()}
    text = _header_json(kind, stream, header, [])
    return latest.encode("ascii") + b" " + text.encode("utf-8")


def _header_json(kind: str, stream: str | None, header: dict, specs: list) -> str:
    """The validated JSON text of a header, with the 64-bit-safe stamp forms added (§4.1)."""
    full = {"schema": f"{PREFIX}.{kind}", "version": list(VERSION), **header, "buffers": specs}
    if stream is not None:
        full["stream"] = stream
    stamp = full.get("stamp_ns")
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        # stamp_ns (~1.8e18) exceeds 2^53: a double-based JSON parser (JavaScript, many others)
        # rounds it; the decimal string is exact everywhere, the float seconds are for display.
        full["stamp_ns_str"] = str(stamp)
        full["stamp_s"] = stamp / 1e9
    mono = full.get("mono_ns")
    if isinstance(mono, dict):
        full["mono_ns_str"] = {k: str(v) for k, v in mono.items()
                               if isinstance(v, int) and not isinstance(v, bool)}
    validate_header(full, kind)
    try:
        return json.dumps(full, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise WireError(f"header is not plain JSON (numbers must be finite): {err}") from None


def _need(header: dict, key: str, types, where: str = "header"):
    if key not in header:
        raise WireError(f"{where} lacks '{key}'")
    value = header[key]
    # JSON true/false decode to bool, a subclass of int: never a valid number here.
    if isinstance(value, bool) or not isinstance(value, types):
        raise WireError(f"{where} field '{key}' has type {type(value).__name__}")
    return value


def _need_int(header: dict, key: str, where: str = "header", minimum: int | None = 0) -> int:
    value = _need(header, key, int, where)
    if minimum is not None and value < minimum:
        raise WireError(f"{where} field '{key}' is {value}, below {minimum}")
    return value


def _need_number(header: dict, key: str, where: str = "header") -> float:
    value = _need(header, key, (int, float), where)
    if not math.isfinite(value):
        raise WireError(f"{where} field '{key}' is not finite")
    return value


def validate_header(header: dict, kind: str) -> None:
    """Check the fields every reader relies on; unknown extra keys are allowed (minor versions add them)."""
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object")
    if header.get("schema") != f"{PREFIX}.{kind}":
        raise WireError(f"header schema {header.get('schema')!r} does not match topic kind '{kind}'")
    version = header.get("version")
    if (not isinstance(version, list) or len(version) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in version)):
        raise WireError(f"header version {version!r} is not [major, minor]")
    if version[0] != MAJOR:
        raise WireError(f"unsupported major version {version[0]} (this reader speaks {MAJOR}.x)")
    session = _need(header, "session", str)
    if not session:
        raise WireError("header session is empty")
    _need_int(header, "seq")
    stamp = _need_int(header, "stamp_ns")
    mono = _need(header, "mono_ns", dict)
    _need_int(mono, "publish", "mono_ns")
    # 1.1 adds exact decimal strings of the 64-bit stamps; when present they must agree
    if "stamp_ns_str" in header and header["stamp_ns_str"] != str(stamp):
        raise WireError(f"header stamp_ns_str {header['stamp_ns_str']!r} differs from stamp_ns {stamp}")
    mono_str = header.get("mono_ns_str", {})
    if not isinstance(mono_str, dict):
        raise WireError("header field 'mono_ns_str' is not an object")
    for key, text in mono_str.items():
        if key in mono and text != str(mono[key]):
            raise WireError(f"mono_ns_str.{key} {text!r} differs from mono_ns.{key} {mono[key]}")
    if kind not in STREAMLESS_KINDS:
        check_stream(_need(header, "stream", str))
    if kind in RESULT_KINDS:
        _need_int(header, "inference")
        for key in ("capture", "infer_start", "infer_end"):
            _need_int(mono, key, "mono_ns")
        audio = _need(header, "audio", dict)
        _need_int(audio, "sample_rate", "audio", minimum=1)
        _need_int(audio, "first_sample", "audio", minimum=None)
        _need_int(audio, "num_samples", "audio")
        frame = _need(header, "frame", dict)
        for key in ("index", "width", "height"):
            _need_int(frame, key, "frame")
        _need(_need(header, "model", dict), "id", str, "model")
        for i, peak in enumerate(_need(header, "peaks", list)):
            if not isinstance(peak, dict):
                raise WireError(f"peaks[{i}] is not an object")
            for key in ("u", "v", "x", "y", "score"):
                _need_number(peak, key, f"peaks[{i}]")
    if kind == "tracks":
        for i, track in enumerate(_need(header, "tracks", list)):
            if not isinstance(track, dict):
                raise WireError(f"tracks[{i}] is not an object")
            _need_int(track, "id", f"tracks[{i}]", minimum=1)
            for key in TRACK_NUMBERS:
                _need_number(track, key, f"tracks[{i}]")
            for key in ("azimuth", "elevation"):  # null without a camera model
                if track.get(key) is not None:
                    _need_number(track, key, f"tracks[{i}]")
    buffers = _need(header, "buffers", list)
    for i, spec in enumerate(buffers):
        _check_spec(spec, i)


def _check_spec(spec, i: int) -> np.dtype:
    where = f"buffers[{i}]"
    if not isinstance(spec, dict):
        raise WireError(f"{where} is not an object")
    _need(spec, "name", str, where)
    dtype_text = _need(spec, "dtype", str, where)
    try:
        dtype = np.dtype(dtype_text)
    except TypeError:
        raise WireError(f"{where} dtype {dtype_text!r} is not a numpy dtype string such as '<f4'") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise WireError(f"{where} dtype {dtype_text!r} is not a plain numeric type")
    shape = _need(spec, "shape", list, where)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"{where} shape {shape!r} is not a list of non-negative integers")
    encoding = spec.get("encoding", "raw")
    if encoding not in ENCODINGS:
        raise WireError(f"{where} encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    return dtype


def _frame_bytes(part) -> memoryview:
    # pyzmq gives bytes (copy=True) or zmq.Frame (copy=False); both expose the buffer protocol.
    buffer = getattr(part, "buffer", part)
    return memoryview(buffer).cast("B")


def decode(parts: list) -> Message:
    """Frames -> Message, validating everything a reader relies on (WireError otherwise). A single
    frame is the `soundlens.latest.v1.` form."""
    if isinstance(parts, (list, tuple)) and len(parts) == 1:
        return decode_latest(parts[0])
    if not isinstance(parts, (list, tuple)) or len(parts) < 2:
        raise WireError("a message needs at least 2 frames (topic, header), got "
                        f"{len(parts) if parts else 0}")
    try:
        topic_text = bytes(_frame_bytes(parts[0])).decode("ascii")
    except UnicodeDecodeError:
        raise WireError("topic frame is not ASCII") from None
    kind, stream = parse_topic(topic_text)
    try:
        header = json.loads(bytes(_frame_bytes(parts[1])).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"header frame is not UTF-8 JSON: {err}") from None
    validate_header(header, kind)
    if stream is not None and header["stream"] != stream:
        raise WireError(f"header stream {header['stream']!r} differs from the topic's {stream!r}")
    specs = header["buffers"]
    if len(specs) != len(parts) - 2:
        raise WireError(f"header describes {len(specs)} buffers but {len(parts) - 2} followed")
    arrays = {}
    for i, (spec, part) in enumerate(zip(specs, parts[2:])):
        dtype = _check_spec(spec, i)
        raw = _frame_bytes(part)
        expected = math.prod(spec["shape"]) * dtype.itemsize
        if raw.nbytes != expected:
            raise WireError(
                f"buffers[{i}] '{spec['name']}' has {raw.nbytes} bytes; shape {spec['shape']} of "
                f"{spec['dtype']} needs {expected} (truncated message?)"
            )
        arrays[spec["name"]] = np.frombuffer(raw, dtype=dtype).reshape(spec["shape"])
    return Message(topic_text, kind, stream, header, arrays)


def decode_latest(frame) -> Message:
    """One `<latest topic> <JSON header>` frame -> Message (kind and stream of the multipart topic it
    mirrors; a heatmap's `heatmap.data` becomes `arrays["heatmap"]`)."""
    raw = bytes(_frame_bytes(frame))
    head, sep, body = raw.partition(b" ")
    try:
        latest = head.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("topic of a single-frame message is not ASCII") from None
    if not sep or not latest.startswith(LATEST_ROOT):
        raise WireError(f"a single-frame message must be '{LATEST_ROOT}<kind>[.<stream>] <JSON>', got "
                        f"{latest[:80]!r}")
    kind, stream = parse_topic(TOPIC_ROOT + latest[len(LATEST_ROOT):])
    if kind not in LATEST_KINDS:
        raise WireError(f"{kind!r} has no latest form")
    try:
        header = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"header of a single-frame message is not UTF-8 JSON: {err}") from None
    validate_header(header, kind)
    if stream is not None and header["stream"] != stream:
        raise WireError(f"header stream {header['stream']!r} differs from the topic's {stream!r}")
    if header["buffers"]:
        raise WireError("a single-frame message has no buffer frames, but its header lists some")
    arrays = {}
    if kind == "heatmap":
        data = _need(_need(header, "heatmap", dict), "data", list, "heatmap")
        width = len(data[0]) if data and isinstance(data[0], list) else -1
        if width <= 0 or not all(isinstance(row, list) and len(row) == width for row in data):
            raise WireError("heatmap.data is not h rows of w numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in data for v in row):
            raise WireError("heatmap.data holds something that is not a number")
        arrays["heatmap"] = np.array(data, dtype=np.float32)
    return Message(latest, kind, stream, header, arrays, latest=True)


# --- results ---------------------------------------------------------------------------------
PEAK_KEYS = ("u", "v", "x", "y", "score")


def result_header(kind: str, loc: Localization) -> dict:
    """The §4.2 fields of one result for a `heatmap`, `peaks` or `preview` message (the publisher
    adds session, seq and mono_ns.publish)."""
    if kind not in RESULT_KINDS:
        raise WireError(f"a result goes out as {', '.join(RESULT_KINDS)}, not {kind!r}")
    frame = {"index": loc.frame.index, "width": loc.frame.width, "height": loc.frame.height}
    if loc.frame.media_s is not None:
        frame["media_s"] = loc.frame.media_s
    t = loc.timing
    header = {
        "inference": loc.inference,
        "stamp_ns": t.stamp_ns,
        "mono_ns": {"capture": t.capture_ns, "infer_start": t.infer_start_ns, "infer_end": t.infer_end_ns},
        "frame": frame,
        "audio": {"sample_rate": loc.audio.sample_rate, "first_sample": loc.audio.first_sample,
                  "num_samples": loc.audio.num_samples},
        "model": {"id": loc.model.id, "method": loc.model.method},
        "peaks": [{k: getattr(p, k) for k in PEAK_KEYS} for p in loc.peaks],
        "hops_skipped": loc.hops_skipped,
        "frames_skipped": loc.frames_skipped,
    }
    if kind == "heatmap":
        header["heatmap"] = {"range": list(loc.raw_range), "region": list(loc.region)}
        if loc.centres is not None:  # 1.3: where each cell looks (§5); 1.2 readers ignore it
            header["heatmap"]["centres"] = loc.centres.to_json()
    # 1.1: every result says how loud its window was and, where the method has one, whether the
    # sound looks visible; 1.0 readers ignore the keys.
    if loc.activity is not None:
        header["activity"] = loc.activity.to_json()
    if loc.on_screen is not None:
        header["on_screen"] = loc.on_screen.to_json()
    return header


# --- tracks (1.1) ------------------------------------------------------------------------------
TRACK_NUMBERS = ("x", "y", "u", "v", "vx", "vy", "vu", "vv", "score", "age_s")


def tracks_header(loc: Localization, tracks, camera: str | None = None) -> dict:
    """A `tracks` message: the result fields of `loc` plus its born tracks (`realtime.tracks.Track`)
    and how their directions were made (`camera`: e.g. "hfov 90", None: no directions)."""
    header = result_header("tracks", loc)
    header["tracks"] = [t.to_json() for t in tracks]
    header["camera"] = camera
    return header


def decode_tracks(msg: Message) -> list:
    """The `realtime.tracks.Track`s of a validated `tracks` message, best score first."""
    from soundlens.realtime.tracks import Track  # tracks' dataclasses cost the light client ~10 ms: only here

    if msg.kind != "tracks":
        raise WireError(f"a {msg.kind} message carries no tracks")
    fields = Track.__dataclass_fields__
    out = []
    for item in msg.header["tracks"]:
        known = {k: item[k] for k in fields if k in item}
        known.setdefault("hits", 0)
        known.setdefault("missed", 0)
        out.append(Track(**known))
    return out


def decode_localization(msg: Message) -> Localization:
    """A validated result message as a `Localization`: `heatmap` only on heatmap messages, and the
    region the whole frame where the message does not say."""
    if msg.kind not in RESULT_KINDS:
        raise WireError(f"a {msg.kind} message carries no result")
    h = msg.header
    mono, frame, audio, model = h["mono_ns"], h["frame"], h["audio"], h["model"]
    extra = h.get("heatmap") if isinstance(h.get("heatmap"), dict) else {}
    region, raw_range = extra.get("region"), extra.get("range")
    if not isinstance(region, list) or not region:
        region = (0.0, 0.0, float(frame["width"]), float(frame["height"]))
    heat = msg.arrays.get("heatmap") if msg.kind == "heatmap" else None
    centres = CellCentres.from_json(extra.get("centres"))
    # a 1.2 publisher: block middles
    if centres is None and heat is not None and heat.ndim == 2 and heat.size:
        with contextlib.suppress(TypeError, ValueError):  # a region that is no 4 numbers places nothing
            centres = CellCentres.from_region(region, heat.shape)
    return Localization(
        inference=h["inference"],
        frame=FrameInfo(frame["index"], frame["width"], frame["height"], frame.get("media_s")),
        audio=AudioWindow(audio["sample_rate"], audio["first_sample"], audio["num_samples"]),
        timing=Timing(h["stamp_ns"], mono["capture"], mono["infer_start"], mono["infer_end"],
                      mono.get("publish")),
        model=ModelInfo(model["id"], str(model.get("method", ""))),
        peaks=to_peaks(h["peaks"]),
        heatmap=heat,
        raw_range=tuple(raw_range) if isinstance(raw_range, list) else None,
        region=tuple(region),
        activity=_activity(h.get("activity")),
        on_screen=_on_screen(h.get("on_screen")),
        hops_skipped=_count(h.get("hops_skipped")),  # absent from 1.0 publishers
        frames_skipped=_count(h.get("frames_skipped")),
        centres=centres,
    )


def _activity(value):
    """A 1.1 `activity` object as `Activity`; None when absent (a 1.0 publisher) or not understood."""
    if not isinstance(value, dict):
        return None
    dbfs, silent, threshold = value.get("dbfs"), value.get("silent"), value.get("threshold_db")
    if not _finite(dbfs) or not isinstance(silent, bool):
        return None
    return Activity(float(dbfs), silent, float(threshold) if _finite(threshold) else float("nan"))


def _on_screen(value):
    if not isinstance(value, dict):
        return None
    similarity, visible, threshold = value.get("similarity"), value.get("visible"), value.get("threshold")
    if not _finite(similarity) or not isinstance(visible, bool):
        return None
    return OnScreen(float(similarity), visible, float(threshold) if _finite(threshold) else float("nan"))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value) -> int:
    """A non-negative count from a header, 0 when absent or not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
