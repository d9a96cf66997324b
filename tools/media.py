"""Reading user media: images and audio files (any rate, any channel count) with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from soundlens.models.errors import SoundLensError


def load_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise SoundLensError(f"cannot decode image {path} ({err}); give a JPEG or PNG file") from None


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """An audio (or video) file -> (mono float32 [N] in [-1, 1], sample rate Hz).

    WAV/FLAC/OGG go through libsndfile; anything else (mp3, m4a, mp4, mkv...) through PyAV's FFmpeg.
    Multi-channel audio is averaged to mono.
    """
    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"audio file not found: {path}")
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        wav = data.mean(axis=1)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        wav, rate = _decode_with_av(path)
    if wav.size == 0:
        raise SoundLensError(f"{path} contains no audio samples")
    return np.ascontiguousarray(wav, dtype=np.float32), int(rate)


def _decode_with_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise SoundLensError(f"{path} has no audio track; give a file with sound")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as err:
        raise SoundLensError(f"cannot decode audio of {path} ({err}); is the file complete?") from None
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate
