"""Procedural videos: objects drift and bounce, and which one sounds changes every 1.5-4 s.

`SynthVideo` renders any frame, its ground truth and the clip's audio in memory (the live
pipeline streams it without a file); `write_video` encodes it as H.264 + AAC mp4 with PyAV
and writes the per-frame ground truth next to it (clip.mp4 -> clip.json).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.training.synth.classes import CLASSES, SPECS
from soundlens.training.synth.scene import SceneConfig, class_sound, place_objects
from soundlens.training.synth.shapes import background, draw_object
from soundlens.training.synth.sounds import background_noise


@dataclass(frozen=True)
class Segment:
    """One stretch of audio, [start, stop) in seconds: what is heard and which visible object makes it.

    `heard` is the class index of the main sound (None in a silent gap); `sounding` the index
    of the visible object making it (None for gaps and off-screen sounds).
    """

    start: float
    stop: float
    heard: int | None
    sounding: int | None


def reflect(p: np.ndarray | float, lo: float, hi: float):
    """Fold an unbounded coordinate into [lo, hi] as a ball bouncing between walls would move."""
    span = hi - lo
    q = np.mod(np.asarray(p) - lo, 2 * span)
    return lo + span - np.abs(q - span)


class SynthVideo:
    """A seeded procedural clip, rendered on demand.

    `seconds` long at `fps`: `n_frames = round(seconds * fps)` frames of image_size x image_size;
    frame `i` shows time `i / fps`. `segment` bounds segment lengths in seconds, `gap_prob`
    is the chance of a 0.3-0.8 s silent gap after a segment; `config.silent_prob` makes a
    segment an off-screen sound, `config.distractor_prob` adds a quieter off-screen one.
    Objects use `config.scale` capped at 0.3 of the side so they have room to move, and there
    are at least two of them unless `config.max_objects` is 1.
    """

    def __init__(
        self,
        seconds: float,
        seed: int = 0,
        config: SceneConfig = SceneConfig(),
        fps: float = 25.0,
        segment: tuple[float, float] = (1.5, 4.0),
        gap_prob: float = 0.2,
        speed: tuple[float, float] = (0.05, 0.2),
    ):
        if seconds <= 0 or fps <= 0 or round(seconds * fps) < 1:
            raise SoundLensError(f"a video needs seconds > 0 and fps > 0 giving >= 1 frame (got {seconds} "
                                 f"s at {fps} fps)")
        if seed < 0:
            raise SoundLensError(f"seed must be >= 0, got {seed}")
        self.seconds, self.fps, self.config, self.seed = float(seconds), float(fps), config, seed
        self.n_frames = int(round(seconds * fps))
        self.size = self.width = self.height = config.image_size
        self.sample_rate = config.sample_rate
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x71DE0]))

        pool = config.class_indices()
        # At least two objects where allowed: the point of a video is that the sounding one changes.
        k = int(rng.integers(min(max(config.min_objects, 2), config.max_objects), config.max_objects + 1))
        scale = (config.scale[0], max(config.scale[0], min(config.scale[1], 0.3)))
        self.placements = place_objects(rng, rng.choice(pool, size=k, replace=False),
                                        replace(config, scale=scale))
        angles = rng.uniform(0, 2 * np.pi, size=len(self.placements))
        speeds = rng.uniform(*speed, size=len(self.placements)) * self.size
        self.velocity = np.stack([np.cos(angles), np.sin(angles)], 1) * speeds[:, None]  # pixels / s
        self.spin = (rng.uniform(0.2, 1.0, size=len(self.placements))
                     * rng.choice([-1, 1], size=len(self.placements)))
        self.background = background(rng, self.size)
        self.classes = [p.cls for p in self.placements]
        self.segments = self._schedule(rng, segment, gap_prob, np.setdiff1d(pool, self.classes))
        self._audio = self._render_audio(rng, np.setdiff1d(pool, self.classes))
        self._cached: tuple[int, np.ndarray, list[np.ndarray]] | None = None

    def _schedule(self, rng, segment, gap_prob, off_screen) -> list[Segment]:
        segments, t, last = [], 0.0, None
        while t < self.seconds:
            stop = min(t + rng.uniform(*segment), self.seconds)
            if off_screen.size and rng.random() < self.config.silent_prob:
                segments.append(Segment(t, stop, int(rng.choice(off_screen)), None))
            else:
                # Uniform over visible objects, but not the previous one, so each boundary is a change.
                choices = [i for i in range(len(self.classes)) if i != last] or [0]
                last = int(rng.choice(choices))
                segments.append(Segment(t, stop, self.classes[last], last))
            t = stop
            if t < self.seconds and rng.random() < gap_prob:
                stop = min(t + rng.uniform(0.3, 0.8), self.seconds)
                segments.append(Segment(t, stop, None, None))
                t = stop
        return segments

    def _render_audio(self, rng, off_screen) -> np.ndarray:
        sr, n = self.sample_rate, int(round(self.seconds * self.sample_rate))
        out = np.zeros(n)
        for seg in self.segments:
            a, b = int(round(seg.start * sr)), int(round(seg.stop * sr))
            if seg.heard is None or b - a < 2:
                continue
            out[a:b] += 10 ** (rng.uniform(-6, 0) / 20) * class_sound(rng, seg.heard, b - a, sr)
            others = off_screen[off_screen != seg.heard]
            if others.size and rng.random() < self.config.distractor_prob:
                gain = 10 ** (rng.uniform(*self.config.distractor_db) / 20)
                out[a:b] += gain * class_sound(rng, int(rng.choice(others)), b - a, sr)
        out += background_noise(rng, n, sr) * 10 ** (-rng.uniform(*self.config.snr_db) / 20)
        return (out * 0.8 / max(float(np.abs(out).max()), 1e-8)).astype(np.float32)

    def segment_at(self, t: float) -> Segment:
        """The segment playing at time `t` seconds (the last one for t >= seconds)."""
        for seg in self.segments:
            if t < seg.stop:
                return seg
        return self.segments[-1]

    def _render(self, index: int) -> tuple[np.ndarray, list[np.ndarray]]:
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} out of range for a {self.n_frames}-frame video")
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1], self._cached[2]
        t = index / self.fps
        image = self.background.copy()
        ids = np.full((self.size, self.size), -1, np.int8)
        boxes = []
        for i, p in enumerate(self.placements):
            cx = reflect(p.cx + self.velocity[i, 0] * t, p.radius, self.size - p.radius)
            cy = reflect(p.cy + self.velocity[i, 1] * t, p.radius, self.size - p.radius)
            angle = p.angle + self.spin[i] * t
            boxes.append(draw_object(image, ids, i, SPECS[p.cls], float(cx), float(cy), p.radius,
                                     angle, p.brightness))
        frame = np.clip(image + 0.5, 0, 255).astype(np.uint8)
        self._cached = (index, frame, boxes)
        return frame, boxes

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (time index / fps) as uint8 [H, W, 3] RGB."""
        return self._render(index)[0]

    def truth(self, index: int) -> dict:
        """Ground truth of frame `index`: {"index", "t", "sounding": class index or None, "box":
        [x1, y1, x2, y2] pixels or None, "heard": class index of the main sound or None,
        "objects": [{"class", "box"}]}."""
        _, boxes = self._render(index)
        t = index / self.fps
        seg = self.segment_at(t)
        return {
            "index": index,
            "t": round(t, 6),
            "sounding": None if seg.sounding is None else self.classes[seg.sounding],
            "box": None if seg.sounding is None else [float(c) for c in boxes[seg.sounding]],
            "heard": seg.heard,
            "objects": [{"class": c, "box": [float(v) for v in b]} for c, b in zip(self.classes, boxes)],
        }

    def audio(self, start: float = 0.0, stop: float | None = None) -> np.ndarray:
        """The clip's audio from `start` to `stop` seconds (default: all), float32 [N] mono at sample_rate."""
        a = int(round(start * self.sample_rate))
        b = self._audio.size if stop is None else int(round(stop * self.sample_rate))
        return self._audio[max(a, 0) : max(b, 0)]


def write_video(
    path: str | os.PathLike,
    seconds: float,
    seed: int = 0,
    config: SceneConfig = SceneConfig(),
    fps: float = 25.0,
    crf: int = 20,
    **video_kwargs,
) -> Path:
    """Encode `SynthVideo(seconds, seed, config, fps, **video_kwargs)` to an mp4; returns the sidecar path.

    Video: H.264 (libx264, yuv420p, `crf`), exactly round(seconds * fps) frames. Audio: AAC
    mono at config.sample_rate (16 kHz by default, what the models consume, so nothing
    resamples). The encoder's 1024-sample priming is trimmed by the mp4 edit list; decoders
    still see the last AAC frame padded up to a multiple of 1024 samples (<= 64 ms at 16 kHz).
    Sidecar clip.json: {"fps", "width", "height", "sample_rate", "n_frames", "seconds", "seed",
    "classes", "segments", "frames": [SynthVideo.truth(i) for every frame]}.
    """
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise SoundLensError(f"{path}: write_video writes .mp4 files; give an output path ending in .mp4")
    if config.image_size % 2:
        raise SoundLensError(f"H.264 (yuv420p) needs an even frame size, got {config.image_size}")
    video = SynthVideo(seconds, seed, config, fps, **video_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    sr = video.sample_rate
    samples = video.audio()

    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = video.width, video.height, "yuv420p"
        vstream.options = {"crf": str(crf), "preset": "veryfast"}
        astream = container.add_stream("aac", rate=sr, layout="mono")
        sent = 0
        frames = []
        for i in range(video.n_frames):
            vframe = av.VideoFrame.from_ndarray(video.frame(i), format="rgb24")
            vframe.pts, vframe.time_base = i, 1 / rate
            container.mux(vstream.encode(vframe))
            frames.append(video.truth(i))
            # Audio up to the end of this frame, so the muxer sees both streams in time order.
            upto = (samples.size if i == video.n_frames - 1
                    else min(int(round((i + 1) / fps * sr)), samples.size))
            if upto > sent:
                aframe = av.AudioFrame.from_ndarray(samples[None, sent:upto], format="flt", layout="mono")
                aframe.sample_rate, aframe.pts, aframe.time_base = sr, sent, Fraction(1, sr)
                container.mux(astream.encode(aframe))
                sent = upto
        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))

    sidecar = path.with_suffix(".json")
    meta = {
        "fps": float(fps), "width": video.width, "height": video.height, "sample_rate": sr,
        "n_frames": video.n_frames, "seconds": video.seconds, "seed": seed, "classes": list(CLASSES),
        "segments": [vars(s) for s in video.segments], "frames": frames,
    }
    sidecar.write_text(json.dumps(meta))
    return sidecar


