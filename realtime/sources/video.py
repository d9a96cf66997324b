"""A video file (PyAV): its frames and its own audio track, resampled to mono float32.

PyAV bundles FFmpeg and reads container timestamps for both streams, which OpenCV's file
backend does not give for audio at all. Undecodable packets are counted as drops and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from soundlens.models.errors import SoundLensError
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


def probe(path: str, need_audio: bool) -> tuple[float | None, tuple[int, int]]:
    """(fps, (width, height)) of a file's first video stream, or a SoundLensError naming the problem."""
    p = Path(path)
    if not p.is_file():
        raise SoundLensError(f"video file {path} not found; check the path given to --video")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise SoundLensError(f"{path} has no video stream; give a video file (mp4, mkv, ...)")
            if need_audio and not container.streams.audio:
                raise SoundLensError(
                    f"{path} has no audio track; give --mic DEVICE for live audio, or a file with sound"
                )
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            return fps, (stream.codec_context.width, stream.codec_context.height)
    except av.error.FFmpegError as err:
        raise SoundLensError(f"cannot read {path}: {err}; is it a video file?") from None


def _time(frame, start: float) -> float | None:
    return None if frame.time is None else frame.time - start


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
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            streams = [video]
            resampler = None
            if self.audio is not None:
                streams.append(container.streams.audio[0])
                resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
            start = (container.start_time or 0) / av.time_base
            width, height = self._scaled(video.codec_context.width, video.codec_context.height)
            frame_index = 0
            for packet in container.demux(streams):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as err:
                    self.stats.drops += 1
                    self.report(f"skipped an undecodable {packet.stream.type} packet: {err}")
                    continue
                for frame in decoded:
                    if packet.stream.type == "video":
                        t = frame.time if frame.time is not None else frame_index / (self.fps or 30.0)
                        rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                        frame_index += 1
                        yield "video", t - start, rgb
                    else:
                        for out in resampler.resample(frame):
                            yield "audio", _time(out, start), out.to_ndarray().reshape(-1)
            if resampler is not None:
                for out in resampler.resample(None):  # the resampler's tail
                    yield "audio", _time(out, start), out.to_ndarray().reshape(-1)

    def describe(self) -> dict:
        return {**super().describe(), "path": self.config.path}
