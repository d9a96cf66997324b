"""Reading media into arrays: images as uint8 RGB, sound as mono float32.

The project's one audio decoder: `MonoResampler` (PyAV's resampler, which is also how EZ-VSL's
loader downmixes) turns decoded frames into mono blocks for `soundlens analyze`, `live --video`
and `decode_audio`; `read_audio` reads whole files for `soundlens localize`, the dataset readers
and `soundlens data prepare`. So a file's sound is the same samples wherever SoundLens reads it.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from soundlens.models.errors import SoundLensError


class MonoResampler:
    """PyAV audio frames -> mono float32 blocks at `rate`, each with its start time in seconds of
    the stream (None when the frame had none). `resample(None)` flushes the resampler's tail."""

    def __init__(self, rate: int):
        self.rate = int(rate)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)

    def resample(self, frame) -> list[tuple[float | None, np.ndarray]]:
        return [(out.time, out.to_ndarray().reshape(-1)) for out in self._resampler.resample(frame)]


def decode_audio(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """The first audio track of any file FFmpeg reads, whole, as (mono float32 [N], rate); `rate`
    None keeps the track's own. A broken file raises av.FFmpegError (callers say what it means to
    them); a file without sound a SoundLensError."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise SoundLensError(f"{path} has no audio track; give a file with sound")
        stream = container.streams.audio[0]
        mono = MonoResampler(rate or stream.codec_context.sample_rate)
        chunks = [samples for frame in container.decode(stream) for _, samples in mono.resample(frame)]
        chunks += [samples for _, samples in mono.resample(None)]
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), mono.rate


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """An audio (or video) file -> (mono float32 [N] in [-1, 1], its sample rate in Hz).

    WAV/FLAC/OGG go through libsndfile (channels averaged); anything else (mp3, m4a, mp4, mkv...)
    through `decode_audio`. A missing or undecodable file is a SoundLensError naming it."""
    import soundfile as sf  # only readers of whole files need libsndfile

    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"audio file {path} not found; check the path")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        wav = data.mean(axis=1)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        try:
            wav, rate = decode_audio(path)
        except av.FFmpegError as err:
            raise SoundLensError(f"cannot decode audio of {path} ({err}); is the file complete?") from None
    return np.ascontiguousarray(wav, dtype=np.float32), int(rate)


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB [H, W, 3] (palette and grey images converted)."""
    from PIL import Image, UnidentifiedImageError  # PIL only where images are read

    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"image {path} not found; check the path")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as err:
        raise SoundLensError(f"cannot decode image {path} ({err}); give a JPEG or PNG file") from None
