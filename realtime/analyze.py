"""Offline analysis of a recorded video: a heatmap for every frame, an overlay video and a JSONL log.

The localisation is the live pipeline's, not a second copy: frames and audio go into the same
`AudioRing`/`FixedClock` the live sources fill, and `OfflineWorker` is an `InferenceWorker`
whose sliding window (the audio ending at the frame's time, short at the start) and result code
(normalisation, where the map lies on the frame, top-k peaks, the header fields) are inherited.
Only the scheduling differs: no thread and no pacing, just every frame (or every `hop`) in
order, several frames per model call (`batch`).

Outputs:
* an H.264 video of the frames with the heatmap drawn over them (the source's timestamps, so
  variable and odd frame rates stay as they were) with the original audio: copied when it is
  AAC, re-encoded to AAC otherwise (Opus, MP3, PCM...);
* optionally a JSONL file, one row per video frame: time, peaks (u, v, x, y, score), scores, model.

A file that cannot be read, has no sound, or breaks off part-way gives one SoundLensError with
the position in seconds; what was written up to there is closed properly (a playable mp4, a JSONL
of complete lines).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from soundlens.models.errors import SoundLensError
from soundlens.realtime.clock import FixedClock
from soundlens.realtime.peaks import map_region
from soundlens.realtime.ring import AudioRing, Frame, FrameRing
from soundlens.realtime.sources.media import AUDIO_RESYNC_S, Pacer
from soundlens.realtime.worker import InferenceWorker, WorkerConfig

OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")
COPYABLE_AUDIO = {".mp4": ("aac",), ".mov": ("aac",), ".mkv": ("aac", "opus", "vorbis", "mp3", "flac")}


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


@dataclass
class AnalyzeSummary:
    frames: int = 0  # video frames written (= JSONL rows)
    inferences: int = 0
    seconds: float = 0.0  # media time covered
    audio: str = ""  # "copied (aac)" or "re-encoded opus -> aac"
    device: str = ""
    wall_s: float = 0.0


class OfflineWorker(InferenceWorker):
    """The live worker's window + result code, fed in media order and run in batches (no thread)."""

    def __init__(self, model, sample_rate: int, config: AnalyzeConfig, model_id: str, audio_seconds: float):
        ring = AudioRing.for_seconds(audio_seconds, sample_rate, FixedClock(sample_rate))
        # A real-time Pacer at t0 = 0 only gives media_s = t_ns / 1e9 in the headers; nothing waits on it.
        super().__init__(model, FrameRing(1), ring, None,
                         WorkerConfig(hop=config.hop, device=config.device, peaks=config.peaks),
                         pacer=Pacer(realtime=True), model_id=model_id)
        self.batch = max(1, int(config.batch))
        self._next_audio: int | None = None  # index where the next contiguous audio block goes

    def add_audio(self, samples: np.ndarray, t: float | None) -> None:
        """Mono float32 samples starting at media time `t` (None: right after the previous block);
        decoder timestamps that jitter by a few samples are kept contiguous (as live file sources do)."""
        sr = self.audio.sample_rate
        index = self._next_audio if t is None and self._next_audio is not None else int(round((t or 0.0) * sr))
        if self._next_audio is not None and abs(index - self._next_audio) <= AUDIO_RESYNC_S * sr:
            index = self._next_audio
        self.audio.write(samples, index=index)
        self._next_audio = index + samples.size

    def window_end(self, frame: Frame) -> int:
        return self.audio.clock.index_at(frame.t_ns)

    def infer(self, frames: list[Frame], previous: list[np.ndarray | None] | None = None) -> list[dict | None]:
        """Heatmap results (the `last_result` dicts of the live worker) for `frames`, batched;
        None for a frame with under 0.1 s of audio before it. `previous`: the decoded frame before
        each (motion input for methods that use it; None where there is none)."""
        previous = previous or [None] * len(frames)
        windows = [self._audio_window(self.window_end(f)) for f in frames]
        windows = [None if w is None else (w[0], self._model_window(w[1])) for w in windows]
        results: list[dict | None] = [None] * len(frames)
        todo = [i for i, w in enumerate(windows) if w is not None]
        while todo:  # runs of equal window length (start-up windows are shorter) share a model call
            length = windows[todo[0]][1].size
            group = [i for i in todo if windows[i][1].size == length][: self.batch]
            todo = [i for i in todo if i not in group]
            start = time.monotonic_ns()
            maps = self._run_batch([frames[i].image for i in group], [windows[i][1] for i in group],
                                   [previous[i] for i in group])
            end = time.monotonic_ns()
            for i, heat in zip(group, maps):
                self._publish(frames[i], windows[i][0], windows[i][1].size, heat, start, end)
                results[i] = self.last_result
        return results

    def _model_window(self, samples: np.ndarray) -> np.ndarray:
        """A start-up window shorter than the model's, cut to its length by the model's own
        `select_window` (what its front-end does anyway), so it batches with full ones."""
        preset = self.model.audio_preset
        length = getattr(preset, "num_samples", None)
        if length is None or samples.size == length or getattr(preset, "context", None) is not None:
            return samples
        from soundlens.models.frontends import select_window

        return select_window(torch.from_numpy(np.ascontiguousarray(samples))[None], preset)[0].numpy()

    def _run_batch(self, images: list[np.ndarray], samples: list[np.ndarray],
                   previous: list[np.ndarray | None]) -> np.ndarray:
        # A frame without a predecessor (the first one) stands in for it: no motion, as live.
        before = [p if p is not None and p.shape == im.shape else im for p, im in zip(previous, images)]
        autocast = (torch.autocast(device_type="cuda", dtype=torch.float16)
                    if self.device.type == "cuda" else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            maps = self.model.localize(np.stack(images), np.stack(samples), self.audio.sample_rate,
                                       np.stack(before))
        return maps.float().cpu().numpy()


# --- drawing ---------------------------------------------------------------------------------
class OverlayPainter:
    """Draws results over frames: the map stretched over the region the model saw, coloured (JET,
    as realtime.overlay) with opacity ramping up from `floor` (below it the frame keeps its own
    pixels), and rings with the peak scores. The colour and alpha layers of a result are kept
    while it is reused (--hop), so each further frame costs one blend."""

    def __init__(self, resize: str = "square", floor: float = 0.2, max_alpha: float = 0.65):
        self.resize, self.floor, self.max_alpha = resize, floor, max_alpha
        self._for: tuple[dict, int, int] | None = None  # (result, width, height) the layers were made for
        self._layers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _make_layers(self, result: dict, w: int, h: int):
        region = result.get("region") or map_region(w, h, self.resize)
        x0, y0, x1, y1 = (int(round(v)) for v in region)
        heat = np.zeros((h, w), np.float32)
        stretched = cv2.resize(np.asarray(result["heatmap"], np.float32), (max(1, x1 - x0), max(1, y1 - y0)),
                               interpolation=cv2.INTER_LINEAR)
        heat[y0:y1, x0:x1] = np.clip((stretched - self.floor) / (1.0 - self.floor), 0.0, 1.0)
        colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        alpha = heat * self.max_alpha
        return colour, 1.0 - alpha, alpha

    def draw(self, frame: np.ndarray, result: dict | None) -> np.ndarray:
        """A new image: `frame` with `result` drawn over it (a plain copy when `result` is None)."""
        if result is None:
            return frame.copy()
        h, w = frame.shape[:2]
        made = self._for
        if made is None or made[0] is not result or made[1:] != (w, h):  # holding `result` keeps its identity unique
            self._for, self._layers = (result, w, h), self._make_layers(result, w, h)
        colour, keep, alpha = self._layers
        out = cv2.blendLinear(np.ascontiguousarray(frame), colour, keep, alpha)
        radius = max(4, min(h, w) // 30)
        scale = max(0.35, min(h, w) / 600)
        for p in result["peaks"]:
            centre = (int(round(p["x"])), int(round(p["y"])))
            cv2.circle(out, centre, radius + 2, (0, 0, 0), 2, lineType=cv2.LINE_AA)
            cv2.circle(out, centre, radius, (255, 255, 255), 2, lineType=cv2.LINE_AA)
            text = f"{p['score']:.2f}"
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 3)
            gap = radius + 6
            x = centre[0] + gap if centre[0] + gap + tw < w else centre[0] - gap - tw
            y = centre[1] - gap if centre[1] - gap - th > 0 else centre[1] + gap + th
            for ink, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
                cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, width, cv2.LINE_AA)
        return out


def draw_result(frame: np.ndarray, result: dict | None, resize: str = "square") -> np.ndarray:
    """One frame with its result drawn (see OverlayPainter); `result` has `heatmap` (normalised
    [h, w]), `peaks` and optionally `region` (x0, y0, x1, y1 in frame pixels)."""
    return OverlayPainter(resize).draw(frame, result)


# --- output ----------------------------------------------------------------------------------
class OverlayWriter:
    """H.264 video + AAC (or copied) audio. `audio_template`: an input audio stream whose packets
    are copied (`write_audio_packet`) when the container takes its codec, else decoded frames are
    re-encoded to AAC (`write_audio_frame`); without a template, `audio_rate`/`audio_layout` set up
    an AAC track fed with arrays (`write_audio_array`)."""

    def __init__(self, path: Path, width: int, height: int, rate, time_base=None, *, audio_template=None,
                 audio_rate: int | None = None, audio_layout: str = "mono", crf: int = 20, preset: str = "veryfast"):
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
                    audio_rate, audio_layout = acc.sample_rate, acc.layout.name if acc.channels <= 2 else "stereo"
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
        return cls(path, cc.width, cc.height, rate, video_in.time_base, audio_template=audio_in, crf=crf, preset=preset)

    def write_video(self, rgb: np.ndarray, pts: int | None, time_base) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
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


def _mono(frame, resampler) -> list[tuple[float | None, np.ndarray]]:
    return [(out.time, out.to_ndarray().reshape(-1)) for out in resampler.resample(frame)]


class _Pending:
    """A decoded frame waiting for its audio / its batch; `need`: a hop falls on it."""

    __slots__ = ("frame", "pts", "need", "done", "result", "previous")

    def __init__(self, frame: Frame, pts: int | None, need: bool, previous: np.ndarray | None = None):
        self.frame, self.pts, self.need, self.previous = frame, pts, need, previous
        self.done = False
        self.result: dict | None = None


class _Broken(Exception):
    """The input broke off; carries the FFmpeg message (raised as SoundLensError after cleanup)."""


def open_input(path: Path):
    if not path.is_file():
        raise SoundLensError(f"video file {path} not found; check the path")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise SoundLensError(f"cannot read {path} at 0.00 s: {err}; is it a complete video file (mp4, mkv, ...)?") from None
    if not container.streams.video:
        container.close()
        raise SoundLensError(f"{path} has no video stream; give a video file with picture and sound")
    if not container.streams.audio:
        container.close()
        raise SoundLensError(f"{path} has no audio track; sound source localisation needs the sound "
                             "(for a silent video with a separate recording, mux them first, e.g. with ffmpeg)")
    return container


def expected_seconds(container, video) -> float | None:
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def analyze_video(model, video_path: str | os.PathLike, out_path: str | os.PathLike,
                  jsonl_path: str | os.PathLike | None = None, config: AnalyzeConfig | None = None,
                  model_id: str = "model") -> AnalyzeSummary:
    """Localise the sound in every frame of `video_path`; write the overlay video (and the JSONL)."""
    from tqdm import tqdm

    config = config or AnalyzeConfig()
    if config.batch < 1:
        raise SoundLensError(f"--batch must be >= 1, got {config.batch}")
    if config.hop < 0:
        raise SoundLensError(f"--hop must be >= 0 seconds, got {config.hop}")
    src, out, jsonl = Path(video_path), Path(out_path), Path(jsonl_path) if jsonl_path else None
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise SoundLensError(f"-o {out}: the overlay video must end in {', '.join(OUTPUT_SUFFIXES)} (e.g. out.mp4)")
    for other in (out, jsonl):
        if other is not None and src.exists() and other.exists() and other.resolve() == src.resolve():
            raise SoundLensError(f"{other} is the input video; write the results to another file")
    started = time.monotonic()
    container = open_input(src)
    summary = AnalyzeSummary()
    try:
        video_in, audio_in = container.streams.video[0], container.streams.audio[0]
        video_in.thread_type = "AUTO"
        start = (container.start_time or 0) / av.time_base
        fps = float(video_in.average_rate or video_in.guessed_rate or 30)
        sr = model.audio_preset.sample_rate
        window_s = model.audio_preset.input_seconds
        worker = OfflineWorker(model, sr, config, model_id, audio_seconds=window_s + 30.0)
        summary.device = worker.meta()["device"]
        painter = OverlayPainter(worker.resize)
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = OverlayWriter.like(out, video_in, audio_in, config.crf, config.preset)
        summary.audio = writer.audio_note
        log = None
        expected = expected_seconds(container, video_in)
        total = video_in.frames or (int(round(expected * fps)) if expected else None)
        bar = tqdm(total=total, unit="frame", desc=src.name, disable=not config.progress, dynamic_ncols=True)
        pending: collections.deque[_Pending] = collections.deque()
        state = {"last": None, "next_hop": None, "media_end": 0.0, "last_good": 0.0, "previous": None}
        mono = av.AudioResampler(format="flt", layout="mono", rate=sr)

        def emit(entry: _Pending) -> None:
            if entry.need:
                state["last"] = entry.result
            result = state["last"]
            writer.write_video(painter.draw(entry.frame.image, result), entry.pts, video_in.time_base)
            if log is not None:
                log.write(json.dumps(jsonl_row(entry.frame, result, model_id), separators=(",", ":")) + "\n")
            summary.frames += 1
            summary.seconds = entry.frame.t_ns / 1e9
            bar.update(1)

        def drain(force: bool) -> None:
            """Infer waiting frames once their audio is in (in full batches unless `force`, or when
            too many wait), then emit every frame whose map is known, in order."""
            while True:
                todo = [e for e in pending if e.need and not e.done]
                overfull = len(pending) >= config.max_pending
                ready = []
                for e in todo[: worker.batch]:
                    if not (force or overfull or worker.audio.end >= worker.window_end(e.frame)):
                        break
                    ready.append(e)
                run = bool(ready) and (force or overfull or len(ready) == worker.batch)
                if run:
                    for e, result in zip(ready, worker.infer([e.frame for e in ready], [e.previous for e in ready])):
                        e.done, e.result = True, result
                        summary.inferences += result is not None
                while pending and (not pending[0].need or pending[0].done):
                    emit(pending.popleft())
                if not run:
                    return

        def on_frame(vframe, index: int) -> None:
            t = (vframe.time - start) if vframe.time is not None else index / fps
            frame = Frame(vframe.to_ndarray(format="rgb24"), int(round(t * 1e9)), time.monotonic_ns(),
                          time.time_ns(), index)
            need = config.hop == 0 or state["next_hop"] is None or t >= state["next_hop"] - 1e-9
            if need and config.hop > 0:  # the next hop on the grid after this frame
                hop_next = t if state["next_hop"] is None else state["next_hop"]
                while hop_next <= t + 1e-9:
                    hop_next += config.hop
                state["next_hop"] = hop_next
            pending.append(_Pending(frame, vframe.pts, need, state["previous"]))
            state["previous"] = frame.image
            state["last_good"] = t
            state["media_end"] = t + 1.0 / fps

        broken: str | None = None
        clean = False
        try:
            if jsonl is not None:
                jsonl.parent.mkdir(parents=True, exist_ok=True)
                log = jsonl.open("w", encoding="utf-8", buffering=1)  # line-buffered: only whole lines
            index = 0
            try:
                for packet in container.demux(video_in, audio_in):
                    kind = packet.stream.type
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError as err:
                        raise _Broken(f"undecodable {kind} data: {err}") from None
                    if kind == "audio":
                        for aframe in decoded:
                            for t, samples in _mono(aframe, mono):
                                worker.add_audio(samples, None if t is None else t - start)
                            if not writer.copy_audio:
                                writer.write_audio_frame(aframe)
                        if writer.copy_audio:
                            writer.write_audio_packet(packet)
                        continue
                    for vframe in decoded:
                        on_frame(vframe, index)
                        index += 1
                    drain(force=False)
            except av.error.FFmpegError as err:
                raise _Broken(str(err)) from None
            for t, samples in _mono(None, mono):  # the resampler's tail
                worker.add_audio(samples, None if t is None else t - start)
            if index == 0:
                raise _Broken("no video frame could be decoded")
            if expected is not None and state["media_end"] < expected - max(0.5, 3.0 / fps):
                raise _Broken(f"the picture ends at {state['media_end']:.2f} s but the file says "
                              f"{expected:.2f} s (truncated?)")
            clean = True
        except _Broken as err:
            broken = str(err)
            clean = True
        finally:
            try:
                if clean:
                    drain(force=True)  # what was decoded before a failure is still analysed and written
            finally:
                bar.close()
                writer.close()
                if log is not None:
                    log.close()
        summary.wall_s = time.monotonic() - started
        if broken is not None:
            where = f"{state['last_good']:.2f} s" + (f" of {expected:.2f} s" if expected else "")
            wrote = f"{out}" + (f" and {jsonl}" if jsonl else "")
            raise SoundLensError(
                f"{src} breaks off at {where}: {broken}; the {summary.frames} frames before it were "
                f"analysed and {wrote} closed properly (playable up to there). Re-export or re-download the video.")
        return summary
    finally:
        container.close()


def jsonl_row(frame: Frame, result: dict | None, model_id: str) -> dict:
    """One JSONL row: this frame's time and the heatmap shown on it, computed on the frame at
    `heatmap_time` (this one, or with --hop the one of the latest hop; null before enough audio)."""
    t = round(frame.t_ns / 1e9, 6)
    if result is None:
        return {"frame": frame.index, "time": t, "inference": None, "heatmap_time": None, "peaks": [],
                "scores": [], "model": model_id}
    peaks = [{k: round(float(p[k]), 5) for k in ("u", "v", "x", "y", "score")} for p in result["peaks"]]
    return {
        "frame": frame.index, "time": t, "inference": result["inference"],
        "heatmap_time": result["frame"]["media_s"],
        "peaks": peaks, "scores": [p["score"] for p in peaks],
        "model": model_id, "method": result["model"].get("method", ""),
        "audio": result["audio"],
    }
