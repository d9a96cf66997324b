"""Reading one frame and one waveform from disk, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from soundlens.models.errors import SoundLensError
from soundlens.models.media import read_audio, read_image


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file -> uint8 [H, W, 3] RGB array (palette and grey images converted)."""
    if not Path(path).is_file():
        raise SoundLensError(f"frame {path} does not exist; check the dataset layout")
    return read_image(path)


def read_mask(path: str | Path) -> np.ndarray:
    """A mask PNG -> float32 [H, W] of 0/1.

    AVSBench S4 reads masks as PIL mode "1" (grey >= 128 -> 1) and MS3 as mode "P" (palette
    index); here a palette image counts index > 0 as foreground and any other mode is
    thresholded at 128 after conversion to grey (official_repos.md §2.9).
    """
    try:
        with Image.open(path) as img:
            if img.mode == "P":
                return (np.asarray(img) > 0).astype(np.float32)
            return (np.asarray(img.convert("L")) >= 128).astype(np.float32)
    except FileNotFoundError:
        raise SoundLensError(f"mask {path} does not exist; check the dataset layout") from None


def read_wav_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """An audio file -> (float32 [N] mono waveform in [-1, 1], sample rate in Hz).

    Multi-channel audio is averaged over channels (the official loaders differ: PyAV's mono
    resampler, channel 0, or none; the model's own front-end decides what it needs).
    """
    if not Path(path).is_file():
        raise SoundLensError(f"audio {path} does not exist; check the dataset layout")
    return read_audio(path)
