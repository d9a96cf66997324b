"""A video file (PyAV): its frames and its own audio track, resampled to mono float32.

PyAV bundles FFmpeg and reads container timestamps for both streams, which OpenCV's file
backend does not give for audio at all. `VideoReader` is the one way SoundLens reads a video
file: `VideoFileSource` (`live --video`) paces what it reads into rings and skips undecodable
packets as drops; `soundlens analyze` reads it in order and stops at the first broken packet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.models.media import MonoResampler
from soundlens.realtime.sources.media import MediaSource


@dataclass
class VideoFileConfig:
    path: str = ""
    realtime: bool = True  # pace at the file's own speed; False: as fast as the reader allows
    loop: bool = False
    audio: bool = True  # False when another source (a microphone) gives the audio
    sample_rate: int = 16000  # audio is resampled to this, mono float32
    max_width: int | None = None  # downscale wider frames while converting (cheaper on CPU)
    frame_capacity: int = 16
    audio_seconds: float = 12.0


def open_video(path: str | Path, no_audio: str | None = None):
    """The opened container of a file with a video stream; `no_audio`, if given, is the advice
    when it has no audio track (then that is an error). SoundLensError names what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise SoundLensError(f"video file {path} not found; check the path")
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as err:
        raise SoundLensError(f"cannot read {path}: {err}; is it a complete video file "
                             "(mp4, mkv, ...)?") from None
    if not container.streams.video:
        container.close()
        raise SoundLensError(f"{path} has no video stream; give a video file (mp4, mkv, ...)")
    if no_audio is not None and not container.streams.audio:
        container.close()
        raise SoundLensError(f"{path} has no audio track; {no_audio}")
    return container


def probe(path: str, need_audio: bool) -> tuple[float | None, tuple[int, int]]:
    """(fps, (width, height)) of a file's first video stream, or a SoundLensError naming the problem."""
    hint = "give --mic DEVICE for live audio, or a file with sound" if need_audio else None
    with open_video(path, hint) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        return fps, (stream.codec_context.width, stream.codec_context.height)


class VideoReader:
    """One pass over an opened container: `demux()` its packets in file order, `picture(frame)` a
    decoded video frame as (media seconds, uint8 RGB), `sound(frame)` a decoded audio frame (None:
    the resampler's tail) as [(media seconds or None, mono float32 at `sample_rate`)]. Media time
    counts from the container's start; a frame without a timestamp is placed at index / `fps`."""

    def __init__(self, container, sample_rate: int | None, *, fps: float = 30.0,
                 size: tuple[int, int] | None = None):
        self.container = container
        self.video = container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = container.streams.audio[0] if sample_rate and container.streams.audio else None
        self.mono = MonoResampler(sample_rate) if self.audio is not None else None
        self.start = (container.start_time or 0) / av.time_base
        self.fps = fps
        self.size = size or (None, None)  # (width, height) to convert frames to; None: the file's own
        self.frames = 0  # video frames converted so far

    def demux(self):
        return self.container.demux([self.video] + ([self.audio] if self.audio is not None else []))

    def picture(self, frame) -> tuple[float, np.ndarray]:
        t = frame.time - self.start if frame.time is not None else self.frames / self.fps
        width, height = self.size
        self.frames += 1
        return t, frame.to_ndarray(format="rgb24", width=width, height=height)

    def sound(self, frame) -> list[tuple[float | None, np.ndarray]]:
        return [(None if t is None else t - self.start, samples) for t, samples in self.mono.resample(frame)]


class VideoFileSource(MediaSource):
    kind = "video"

    def __init__(self, config: VideoFileConfig):
        self.config = config
        fps, size = probe(config.path, config.audio)
        super().__init__(Path(config.path).name, realtime=config.realtime, loop=config.loop,
                         audio=config.audio, sample_rate=config.sample_rate,
                         frame_capacity=config.frame_capacity, audio_seconds=config.audio_seconds)
        self.fps = fps
        self.size = self._scaled(*size)

    def _scaled(self, width: int, height: int) -> tuple[int, int]:
        limit = self.config.max_width
        if not limit or width <= limit:
            return width, height
        # even dimensions keep swscale on its fast paths
        return limit, max(2, int(round(height * limit / width / 2)) * 2)

    def _pass(self) -> Iterator[tuple[str, float, np.ndarray]]:
        with av.open(self.config.path) as container:
            cc = container.streams.video[0].codec_context
            reader = VideoReader(container, self.sample_rate if self.audio is not None else None,
                                 fps=self.fps or 30.0, size=self._scaled(cc.width, cc.height))
            for packet in reader.demux():
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as err:
                    self.stats.drops += 1
                    self.report(f"skipped an undecodable {packet.stream.type} packet: {err}")
                    continue
                for frame in decoded:
                    if packet.stream.type == "video":
                        yield "video", *reader.picture(frame)
                    else:
                        for t, samples in reader.sound(frame):
                            yield "audio", t, samples
            if reader.audio is not None:
                for t, samples in reader.sound(None):
                    yield "audio", t, samples

    def describe(self) -> dict:
        return {**super().describe(), "path": self.config.path}
