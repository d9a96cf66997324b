"""Helpers for the realtime tests: a stand-in model with the models.* contract, fixture clips, test videos."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

# ../shared/fixtures beside the clone (as tests/conftest.py finds it), or $SOUNDLENS_FIXTURES
VIDEOS = Path(os.environ.get("SOUNDLENS_FIXTURES",
                             Path(__file__).resolve().parents[3] / "shared" / "fixtures")) / "videos"


@dataclass(frozen=True)
class _AudioPreset:
    name: str = "standin"
    sample_rate: int = 16000
    input_seconds: float = 1.0


@dataclass(frozen=True)
class _ImagePreset:
    name: str = "standin"
    size: int = 56
    resize: str = "square"


class StandInModel(nn.Module):
    """Follows the models.* contract (prepare / heatmap / presets) at a few microseconds a call.

    Its 7x7 map is the brightness of the frame scaled by the audio's RMS, so a bright patch is the
    peak; `delay` makes it artificially slow.
    """

    method = "standin"

    def __init__(self, delay: float = 0.0, input_seconds: float = 1.0):
        super().__init__()
        self.audio_preset = _AudioPreset(input_seconds=input_seconds)
        self.image_preset = _ImagePreset()
        self.scale = nn.Parameter(torch.ones(()))
        self.delay = delay
        self.calls = 0
        self.seen: list[tuple[np.ndarray, np.ndarray | None]] = []  # (frames, previous_frames) of each call

    def localize(self, frames, waveforms, sample_rate, previous_frames=None):
        self.seen.append((np.array(frames), None if previous_frames is None else np.array(previous_frames)))
        return self.heatmap(*self.prepare(frames, waveforms, sample_rate))

    def prepare(self, frames, waveforms, sample_rate):
        x = torch.as_tensor(np.asarray(frames)).permute(0, 3, 1, 2).float().div(255)
        images = F.interpolate(x, size=(self.image_preset.size,) * 2, mode="bilinear", antialias=True)
        specs = torch.as_tensor(np.asarray(waveforms), dtype=torch.float32)[:, None, None, :]
        return images.to(self.scale.device), specs.to(self.scale.device)

    def heatmap(self, images, specs):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        energy = specs.flatten(1).square().mean(1).sqrt()
        return (F.adaptive_avg_pool2d(images.mean(1, keepdim=True), 7)[:, 0] * energy[:, None, None]
                * self.scale)


def fixture_video(name: str = "1aDnyPubxdY_118000_128000.mp4") -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"real test clip {path} is absent (the shared fixtures folder is not on this machine)")
    return path


def write_test_video(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48), fps: int = 25,
                     audio_rate: int | None = None) -> Path:
    """A small real H.264 mp4 (moving bright square; optional sine track) written with PyAV."""
    import av

    width, height = size
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=audio_rate, layout="mono") if audio_rate else None
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            x = (i * 4) % (width - 8)
            image[8:16, x : x + 8] = 255
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        if audio is not None:
            n = int(frames / fps * audio_rate)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / audio_rate)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate = audio_rate
            container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path
