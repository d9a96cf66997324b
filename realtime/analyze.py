"""Offline analysis of a recorded video: a heatmap for every frame, an overlay video and a JSONL log.

The localisation is the live pipeline's, not a second copy: the file is read by the `VideoReader`
that `live --video` reads with, its sound placed on the sample grid by the same `AudioPlacer` into
the same `AudioRing`/`FixedClock` the live sources fill, and a `Localizer` (the live worker holds
one too) cuts the sliding window (the audio ending at the frame's time, short at the start), runs
the model and makes the `Localization`. Only the scheduling differs: no thread and no pacing,
just every frame (or every `hop`) in order, several frames per model call (`batch`).

Outputs:
* an H.264 video of the frames with the heatmap drawn over them (the source's timestamps, so
  variable and odd frame rates stay as they were) with the original audio: copied when it is
  AAC, re-encoded to AAC otherwise (Opus, MP3, PCM...);
* optionally a JSONL file, one row per video frame in its own versioned schema
  (`JSONL_SCHEMA`, docs/analyze_jsonl.md): time, peaks (u, v, x, y, score), scores, model.

A file that cannot be read, has no sound, or breaks off part-way gives one SoundLensError with
the position in seconds; what was written up to there is closed properly (a playable mp4, a JSONL
of complete lines). Ctrl-C (KeyboardInterrupt) closes both the same way and goes on up.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.realtime.activity import DEFAULT_SILENCE_DB
from soundlens.realtime.clock import FixedClock
from soundlens.realtime.localizer import Localizer
from soundlens.realtime.overlay import OverlayPainter
from soundlens.realtime.result import Localization, ModelInfo
from soundlens.realtime.ring import AudioRing, Frame
from soundlens.realtime.sources.media import AudioPlacer
from soundlens.realtime.sources.video import VideoReader, open_video
from soundlens.realtime.wire import PEAK_KEYS
from tqdm import tqdm

OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")
COPYABLE_AUDIO = {".mp4": ("aac",), ".mov": ("aac",), ".mkv": ("aac", "opus", "vorbis", "mp3", "flac")}
NO_AUDIO = ("sound source localisation needs the sound (for a silent video with a separate recording, "
            "mux them first, e.g. with ffmpeg)")


@dataclass
class AnalyzeConfig:
    batch: int = 8  # frames per model call
    hop: float = 0.0  # seconds of media between inferences; 0: every frame. Frames between reuse the last map
    device: str = "auto"
    peaks: int = 3
    crf: int = 20  # x264 quality (lower is better, 18-28 sensible)
    preset: str = "veryfast"  # x264 speed preset
    progress: bool = True  # tqdm bar on stderr
    max_pending: int = 64  # frames held while waiting for their audio (interleaving), beyond: infer anyway
    silence_db: float = DEFAULT_SILENCE_DB  # results' `activity` threshold
    backend: str = "eager"  # models.inference.BACKENDS: "eager" (BatchNorm folded) or "onnxruntime" (CPU)
    on_result: Callable[[Localization], None] | None = None  # sees every result in file order (--mcap)


@dataclass
class AnalyzeSummary:
    frames: int = 0  # video frames written (= JSONL rows)
    inferences: int = 0
    seconds: float = 0.0  # media time covered
    audio: str = ""  # "copied (aac)" or "re-encoded opus -> aac"
    device: str = ""
    wall_s: float = 0.0


# --- the JSONL rows: a file format of its own, not the wire header ------------------------------
JSONL_SCHEMA = "soundlens.analyze.v1"
# Every row has every field; docs/analyze_jsonl.md describes them and tests pin both.
JSONL_FIELDS = {
    "schema": "string", "frame": "integer", "time": "number", "inference": "integer|null",
    "heatmap_time": "number|null", "peaks": "array", "scores": "array", "model": "string",
    "method": "string", "audio": "object|null",
}


def jsonl_row(frame: Frame, loc: Localization | None, model: ModelInfo) -> dict:
    """One row: this frame's time and the heatmap shown on it, computed on the frame at
    `heatmap_time` (this one, or with --hop the one of the latest hop; null before enough audio)."""
    row = {"schema": JSONL_SCHEMA, "frame": frame.index, "time": round(frame.t_ns / 1e9, 6),
           "inference": None, "heatmap_time": None, "peaks": [], "scores": [], "model": model.id,
           "method": model.method, "audio": None}
    if loc is not None:
        peaks = [{k: round(float(getattr(p, k)), 5) for k in PEAK_KEYS} for p in loc.peaks]
        audio = loc.audio
        row.update(inference=loc.inference, heatmap_time=loc.frame.media_s, peaks=peaks,
                   scores=[p["score"] for p in peaks],
                   audio={"sample_rate": audio.sample_rate, "first_sample": audio.first_sample,
                          "num_samples": audio.num_samples})
    return row


# --- output ----------------------------------------------------------------------------------
class OverlayWriter:
    """H.264 video + AAC (or copied) audio. `audio_template`: an input audio stream whose packets
    are copied (`write_audio_packet`) when the container takes its codec, else decoded frames are
    re-encoded to AAC (`write_audio_frame`); without a template, `audio_rate`/`audio_layout` set up
    an AAC track fed with arrays (`write_audio_array`)."""

    def __init__(self, path: Path, width: int, height: int, rate, time_base=None, *, audio_template=None,
                 audio_rate: int | None = None, audio_layout: str = "mono", crf: int = 20,
                 preset: str = "veryfast"):
        self.path = Path(path)
        self.container = av.open(str(self.path), mode="w")
        self.copy_audio = False
        self._audio_next: int | None = None
        try:
            self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
            self.video = self.container.add_stream("libx264", rate=rate)
            self.video.width, self.video.height, self.video.pix_fmt = self.width, self.height, "yuv420p"
            if time_base is not None:
                self.video.codec_context.time_base = time_base  # keep the source's pts as they are
            self.video.options = {"crf": str(crf), "preset": preset}
            if audio_template is not None:
                name = audio_template.codec_context.name
                if name in COPYABLE_AUDIO.get(self.path.suffix.lower(), ()):
                    self.audio = self.container.add_stream_from_template(audio_template)
                    self.copy_audio = True
                    self.audio_note = f"copied ({name})"
                else:
                    acc = audio_template.codec_context
                    audio_rate, audio_layout = (acc.sample_rate,
                                                acc.layout.name if acc.channels <= 2 else "stereo")
                    self.audio_note = f"re-encoded {name} -> aac"
            else:
                self.audio_note = "aac"
            if not self.copy_audio:
                self.audio = self.container.add_stream("aac", rate=audio_rate, layout=audio_layout)
                self.audio.codec_context.time_base = Fraction(1, audio_rate)
                self._resampler = av.AudioResampler(format="fltp", layout=audio_layout, rate=audio_rate)
        except BaseException:
            self.container.close()
            raise
        self.frames = 0

    @classmethod
    def like(cls, path: Path, video_in, audio_in, crf: int = 20, preset: str = "veryfast") -> OverlayWriter:
        """A writer for the overlay of `video_in` (same size, frame rate and time base) with `audio_in`."""
        rate = video_in.average_rate or video_in.guessed_rate or Fraction(30)
        cc = video_in.codec_context
        return cls(path, cc.width, cc.height, rate, video_in.time_base, audio_template=audio_in,
                   crf=crf, preset=preset)

    def write_video(self, rgb: np.ndarray, pts: int | None, time_base) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]),
                                           format="rgb24")
        if pts is not None:
            frame.pts, frame.time_base = pts, time_base
        self.container.mux(self.video.encode(frame))
        self.frames += 1

    def write_audio_packet(self, packet) -> None:
        if packet.pts is None and packet.dts is None:
            return  # nothing a muxer could place (e.g. a flush packet)
        packet.stream = self.audio
        self.container.mux(packet)

    def write_audio_frame(self, frame) -> None:
        sr = self.audio.codec_context.sample_rate
        for out in self._resampler.resample(frame):
            self._encode_audio(out, sr)

    def write_audio_array(self, samples: np.ndarray) -> None:
        """float32 samples, [N] (mono) or [channels, N], at the track's rate, appended."""
        data = np.ascontiguousarray(np.atleast_2d(np.asarray(samples, dtype=np.float32)))
        layout = self.audio.codec_context.layout.name
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1) if data.shape[0] == 1 else data,
                                           format="flt" if data.shape[0] == 1 else "fltp", layout=layout)
        frame.sample_rate = self.audio.codec_context.sample_rate
        self.write_audio_frame(frame)

    def _encode_audio(self, out, sr: int) -> None:
        if self._audio_next is None:
            self._audio_next = max(0, int(round((out.time or 0.0) * sr)))
        out.pts, out.time_base = self._audio_next, Fraction(1, sr)
        self._audio_next += out.samples
        self.container.mux(self.audio.encode(out))

    def close(self) -> None:
        """Flush the encoders and write the container's index (a partial file stays playable)."""
        try:
            self.container.mux(self.video.encode(None))
            if not self.copy_audio:
                sr = self.audio.codec_context.sample_rate
                for out in self._resampler.resample(None):
                    self._encode_audio(out, sr)
                self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()


class _Pending:
    """A decoded frame waiting for its audio / its batch; `need`: a hop falls on it."""

    __slots__ = ("frame", "pts", "need", "done", "result", "previous")

    def __init__(self, frame: Frame, pts: int | None, need: bool, previous: np.ndarray | None = None):
        self.frame, self.pts, self.need, self.previous = frame, pts, need, previous
        self.done = False
        self.result: Localization | None = None


class _Broken(Exception):
    """The input broke off; carries the FFmpeg message (raised as SoundLensError after cleanup)."""


def expected_seconds(container, video) -> float | None:
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


class _Analysis:
    """One run of `analyze_video` over an opened file: reads it in order, infers waiting frames in
    batches once their audio is in, and writes every frame (overlay + JSONL row) in order."""

    def __init__(self, model, container, src: Path, out: Path, config: AnalyzeConfig, model_id: str):
        self.config = config
        video_in = container.streams.video[0]
        self.fps = float(video_in.average_rate or video_in.guessed_rate or 30)
        sr = model.audio_preset.sample_rate
        self.reader = VideoReader(container, sr, fps=self.fps)
        self.localizer = Localizer(model, sr, device=config.device, model_id=model_id, peaks=config.peaks,
                                   silence_db=config.silence_db, backend=config.backend)
        self.ring = AudioRing.for_seconds(model.audio_preset.input_seconds + 30.0, sr, FixedClock(sr))
        self.placer = AudioPlacer(sr)
        self.painter = OverlayPainter(self.localizer.resize)
        self.summary = AnalyzeSummary(device=self.localizer.describe_device())
        out.parent.mkdir(parents=True, exist_ok=True)
        self.writer = OverlayWriter.like(out, video_in, self.reader.audio, config.crf, config.preset)
        self.summary.audio = self.writer.audio_note
        self.expected = expected_seconds(container, video_in)
        total = video_in.frames or (int(round(self.expected * self.fps)) if self.expected else None)
        self.bar = tqdm(total=total, unit="frame", desc=src.name, disable=not config.progress,
                        dynamic_ncols=True)
        self.log = None  # the JSONL file, when asked for
        self.pending: collections.deque[_Pending] = collections.deque()
        self.shown: Localization | None = None  # the map on the frames being written (--hop reuses it)
        self.next_hop: float | None = None
        self.previous: np.ndarray | None = None  # the frame before the next one (motion input)
        self.last_good = self.media_end = 0.0

    def run(self, jsonl: Path | None) -> str | None:
        """Read, infer and write everything; returns why the file broke off (None: it did not).
        What was decoded before a break is still analysed and written; the outputs are closed
        whatever happens."""
        broken, clean = None, False
        try:
            if jsonl is not None:
                jsonl.parent.mkdir(parents=True, exist_ok=True)
                self.log = jsonl.open("w", encoding="utf-8", buffering=1)  # line-buffered: only whole lines
            self.read()
            clean = True
        except _Broken as err:
            broken, clean = str(err), True
        finally:
            try:
                if clean:
                    self.drain(force=True)
            finally:
                self.close()
        return broken

    def close(self) -> None:
        try:
            self.bar.close()
            self.writer.close()
        finally:
            if self.log is not None:
                self.log.close()

    # --- reading --------------------------------------------------------------------------
    def read(self) -> None:
        """Demux the whole file; _Broken where it breaks off."""
        try:
            for packet in self.reader.demux():
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as err:
                    raise _Broken(f"undecodable {packet.stream.type} data: {err}") from None
                if packet.stream.type == "audio":
                    self._audio(packet, decoded)
                    continue
                for vframe in decoded:
                    self._frame(vframe)
                self.drain(force=False)
        except av.error.FFmpegError as err:
            raise _Broken(str(err)) from None
        self._place(self.reader.sound(None))  # the resampler's tail
        if self.reader.frames == 0:
            raise _Broken("no video frame could be decoded")
        if self.expected is not None and self.media_end < self.expected - max(0.5, 3.0 / self.fps):
            raise _Broken(f"the picture ends at {self.media_end:.2f} s but the file says "
                          f"{self.expected:.2f} s (truncated?)")

    def _audio(self, packet, decoded) -> None:
        for aframe in decoded:
            self._place(self.reader.sound(aframe))
            if not self.writer.copy_audio:
                self.writer.write_audio_frame(aframe)
        if self.writer.copy_audio:
            self.writer.write_audio_packet(packet)

    def _place(self, blocks: list[tuple[float | None, np.ndarray]]) -> None:
        for t, samples in blocks:
            self.ring.write(samples, index=self.placer.place(self.placer.start_s(t), samples.size))

    def _frame(self, vframe) -> None:
        t, image = self.reader.picture(vframe)
        frame = Frame(image, int(round(t * 1e9)), time.monotonic_ns(), time.time_ns(), self.reader.frames - 1)
        hop = self.config.hop
        need = hop == 0 or self.next_hop is None or t >= self.next_hop - 1e-9
        if need and hop > 0:  # the next hop on the grid after this frame
            hop_next = t if self.next_hop is None else self.next_hop
            while hop_next <= t + 1e-9:
                hop_next += hop
            self.next_hop = hop_next
        self.pending.append(_Pending(frame, vframe.pts, need, self.previous))
        self.previous = image
        self.last_good, self.media_end = t, t + 1.0 / self.fps

    # --- inferring and writing ------------------------------------------------------------
    def _audio_end(self, frame: Frame) -> int:
        return self.ring.clock.index_at(frame.t_ns)

    def drain(self, force: bool) -> None:
        """Infer waiting frames once their audio is in (in full batches unless `force`, or when
        too many wait), then write every frame whose map is known, in order."""
        batch = max(1, int(self.config.batch))
        while True:
            todo = [e for e in self.pending if e.need and not e.done]
            overfull = len(self.pending) >= self.config.max_pending
            ready = []
            for e in todo[:batch]:
                if not (force or overfull or self.ring.end >= self._audio_end(e.frame)):
                    break
                ready.append(e)
            run = bool(ready) and (force or overfull or len(ready) == batch)
            if run:
                self._infer(ready, batch)
            while self.pending and (not self.pending[0].need or self.pending[0].done):
                self._emit(self.pending.popleft())
            if not run:
                return

    def _infer(self, entries: list[_Pending], batch: int) -> None:
        """Results for `entries`: runs of equal window length (start-up windows are shorter) share a
        model call; a frame with under 0.1 s of audio before it gets none."""
        loc = self.localizer
        windows = [loc.audio_window(self.ring, self._audio_end(e.frame)) for e in entries]
        windows = [None if w is None else (w[0], loc.batchable(w[1])) for w in windows]
        todo = [i for i, w in enumerate(windows) if w is not None]
        while todo:
            length = windows[todo[0]][1].size
            group = [i for i in todo if windows[i][1].size == length][:batch]
            todo = [i for i in todo if i not in group]
            start = time.monotonic_ns()
            maps = loc.maps([entries[i].frame.image for i in group], [windows[i][1] for i in group],
                            [entries[i].previous for i in group])
            end = time.monotonic_ns()
            for i, heat in zip(group, maps):
                frame = entries[i].frame
                entries[i].result = loc.result(heat, frame, (windows[i][0], length), (start, end),
                                               inference=self.summary.inferences,
                                               media_s=round(frame.t_ns / 1e9, 6), samples=windows[i][1])
                self.summary.inferences += 1
                if self.config.on_result is not None:
                    self.config.on_result(entries[i].result)
        for e in entries:
            e.done = True

    def _emit(self, entry: _Pending) -> None:
        if entry.need:
            self.shown = entry.result
        image = self.painter.draw_result(entry.frame.image, self.shown)
        self.writer.write_video(image, entry.pts, self.reader.video.time_base)
        if self.log is not None:
            row = jsonl_row(entry.frame, self.shown, self.localizer.info)
            self.log.write(json.dumps(row, separators=(",", ":")) + "\n")
        self.summary.frames += 1
        self.summary.seconds = entry.frame.t_ns / 1e9
        self.bar.update(1)


def _checked_paths(config: AnalyzeConfig, video_path, out_path, jsonl_path) -> tuple[Path, Path, Path | None]:
    if config.batch < 1:
        raise SoundLensError(f"--batch must be >= 1, got {config.batch}")
    if config.hop < 0:
        raise SoundLensError(f"--hop must be >= 0 seconds, got {config.hop}")
    src, out, jsonl = Path(video_path), Path(out_path), Path(jsonl_path) if jsonl_path else None
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise SoundLensError(f"-o {out}: the overlay video must end in {', '.join(OUTPUT_SUFFIXES)} (e.g. "
                             "out.mp4)")
    for other in (out, jsonl):
        if other is not None and src.exists() and other.exists() and other.resolve() == src.resolve():
            raise SoundLensError(f"{other} is the input video; write the results to another file")
    return src, out, jsonl


def analyze_video(model, video_path: str | os.PathLike, out_path: str | os.PathLike,
                  jsonl_path: str | os.PathLike | None = None, config: AnalyzeConfig | None = None,
                  model_id: str = "model") -> AnalyzeSummary:
    """Localise the sound in every frame of `video_path`; write the overlay video (and the JSONL)."""
    config = config or AnalyzeConfig()
    src, out, jsonl = _checked_paths(config, video_path, out_path, jsonl_path)
    started = time.monotonic()
    container = open_video(src, NO_AUDIO)
    analysis = None
    try:
        analysis = _Analysis(model, container, src, out, config, model_id)
        broken = analysis.run(jsonl)
    except OSError as err:  # PyAV's av.error.OSError too: a full or vanished disk, one line, not a traceback
        done = analysis.summary.frames if analysis is not None else 0
        raise SoundLensError(
            f"writing the results failed after {done} frames: {err.strerror or err}"
            + (f" ({err.filename})" if getattr(err, "filename", None) else "")
            + f"; {jsonl} holds complete rows up to there" * bool(jsonl)
            + "; an mp4 cut off this way lacks its index: free some space (or write elsewhere) and run again"
        ) from None
    finally:
        container.close()
    analysis.summary.wall_s = time.monotonic() - started
    if broken is not None:
        where = (f"{analysis.last_good:.2f} s"
                 + (f" of {analysis.expected:.2f} s" if analysis.expected else ""))
        wrote = f"{out}" + (f" and {jsonl}" if jsonl else "")
        raise SoundLensError(
            f"{src} breaks off at {where}: {broken}; the {analysis.summary.frames} frames before it were "
            f"analysed and {wrote} closed properly (playable up to there). Re-export or re-download the "
            "video.")
    return analysis.summary
