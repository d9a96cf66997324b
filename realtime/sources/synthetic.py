"""The procedural benchmark video (training.synth.SynthVideo) streamed without a file.

Frames are rendered on demand and the audio is cut from the clip's track, so the pipeline sees
exactly what the ground truth (`truth(index)`) describes. Paced like a file: real time or lock-step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import gcd

import numpy as np
from soundlens.realtime.sources.media import MediaSource


@dataclass
class SyntheticConfig:
    """How a rendered video is streamed. What it shows (length, seed, size, frame rate) is the
    video's own: `training.synth.SynthVideo` declares the scene once."""

    realtime: bool = True
    loop: bool = False
    sample_rate: int = 16000  # ring rate; the clip's own rate is resampled to it if they differ
    frame_capacity: int = 16
    audio_seconds: float = 12.0


class SyntheticSource(MediaSource):
    kind = "synthetic"

    def __init__(self, video, config: SyntheticConfig | None = None):
        """`video` renders the scene on demand: an object with `fps`, `width`, `height`, `n_frames`,
        `sample_rate`, `audio()`, `frame(i)` and `truth(i)` (and optionally `seed`), such as
        `training.synth.SynthVideo` (the procedural benchmark; realtime does not import training)."""
        self.config = cfg = config or SyntheticConfig()
        super().__init__(f"seed{getattr(video, 'seed', 0)}", realtime=cfg.realtime, loop=cfg.loop,
                         sample_rate=cfg.sample_rate, frame_capacity=cfg.frame_capacity,
                         audio_seconds=cfg.audio_seconds)
        self.video = video
        self.fps = self.video.fps
        self.size = (self.video.width, self.video.height)
        track = self.video.audio()
        if self.video.sample_rate != self.sample_rate:
            from scipy.signal import resample_poly  # scipy only when the rates differ

            g = gcd(self.video.sample_rate, self.sample_rate)
            track = resample_poly(track, self.sample_rate // g,
                                  self.video.sample_rate // g).astype(np.float32)
        self._track = track

    def truth(self, media_s: float) -> dict:
        """Ground truth of the frame shown at media time `media_s` (loops wrap around)."""
        index = int(round(media_s * self.fps)) % self.video.n_frames
        return self.video.truth(index)

    def _pass(self) -> Iterator[tuple[str, float, np.ndarray]]:
        sr, fps = self.sample_rate, self.fps
        for i in range(self.video.n_frames):
            t = i / fps
            yield "video", t, self.video.frame(i)
            a, b = int(round(t * sr)), int(round((i + 1) / fps * sr))
            if i == self.video.n_frames - 1:
                b = self._track.size
            if b > a:
                yield "audio", a / sr, self._track[a:b]

    def describe(self) -> dict:
        return {**super().describe(), "seconds": self.video.n_frames / self.fps,
                "seed": getattr(self.video, "seed", None)}
