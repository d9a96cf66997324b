"""Raw videos -> the official `frames/<id>.jpg` + `audio/<id>.wav` layout (official_repos.md §4.1).

No official repository ships this step (official_repos.md §5: EZ-VSL #6, HTF #4 "coming soon").
SoundLens decodes each video with PyAV and writes:

    OUT/frames/<id>.jpg           the middle frame (EZ-VSL maintainer, issue #1, §2.1)
    OUT/keyframes/<id>/<k>.jpg    with --frames K > 1: K frames at (k + 0.5) / K of the clip
    OUT/audio/<id>.wav            the whole soundtrack, mono 16-bit PCM at --rate (16 kHz: what the
                                  official readers assume, §2.1), downmixed by PyAV's resampler
                                  as EZ-VSL's loader does
    OUT/prepared.txt              every id whose files are complete (a list file for --data)
    OUT/prepare_report.json       this run's counts and every failed video with its reason

Ids are the video file names normalised like every list (`training.splits.normalize_id`), so
`<ytid>_<start_ms>_<end_ms>.mp4` becomes the VGG-SS id `<ytid>_<start:06d>`. Files are written
under a temporary name and renamed, the frame last, so an interrupted run leaves no half file and a
re-run skips finished ids. A corrupt, truncated or silent (audio-less) video is reported and skipped;
one bad file never stops the run.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image
from soundlens.models.errors import SoundLensError
from soundlens.models.media import decode_audio
from soundlens.training.splits import normalize_id
from tqdm import tqdm

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts")
# A key frame must lie within this many seconds of its target time, else the file is truncated.
FRAME_TOLERANCE_S = 1.0
# A soundtrack covering less than this share of the container's duration marks a truncated file.
MIN_AUDIO_COVERAGE = 0.5


@dataclass(frozen=True)
class PrepareConfig:
    """`soundlens data prepare` settings (defaults: the official layout's)."""

    frames: int = 1  # key frames per video; frames/<id>.jpg is always the middle one (§2.1, EZ-VSL #1)
    rate: int = 16000  # Hz of the written wav (§2.1: the official readers assume 16 kHz)
    workers: int = 1  # decoding processes
    jpeg_quality: int = 95
    progress: bool = True


class PrepareError(Exception):
    """Why one video could not be prepared (goes into the report, never stops the run)."""


@dataclass
class PrepareResult:
    prepared: list[str] = field(default_factory=list)  # ids written by this run
    already_done: list[str] = field(default_factory=list)  # ids skipped because complete
    failed: list[dict] = field(default_factory=list)  # {"file", "id", "reason"}
    report_path: Path | None = None
    list_path: Path | None = None


def key_times(duration: float, k: int) -> list[float]:
    """K evenly spaced frame times (k + 0.5) / K * duration, seconds, ascending."""
    return [duration * (i + 0.5) / k for i in range(k)]


def video_id(path: str | Path) -> str:
    return normalize_id(Path(path).name)


def list_videos(videos_dir: str | Path) -> list[Path]:
    """Video files under `videos_dir` (recursively), sorted."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise SoundLensError(f"{root} is not a directory; pass the folder that holds the videos")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


# --- decoding --------------------------------------------------------------------------------
def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE microseconds
    return None


def _scan_duration(path: Path) -> float:
    """Duration from the last video packet's timestamp (containers without a duration field)."""
    last = 0.0
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        for packet in c.demux(vs):
            if packet.pts is not None and packet.time_base is not None:
                last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    if last <= 0:
        raise PrepareError("the video stream has no timestamps")
    return last


def decode_frames(path: Path, targets: list[float]) -> list[np.ndarray]:
    """RGB uint8 frames nearest to each target time (seconds, ascending), via one seek + decode."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        start = max(targets[0] - 0.5, 0.0)
        if start > 0:
            c.seek(int(start * av.time_base), backward=True)  # to the key frame before the first target
        picked: list = [None] * len(targets)
        i, prev, prev_t = 0, None, None
        for frame in c.decode(vs):
            t = frame.time
            if t is None:
                continue
            while i < len(targets) and t >= targets[i]:
                use_prev = prev is not None and abs(prev_t - targets[i]) < abs(t - targets[i])
                picked[i] = prev if use_prev else frame
                i += 1
            if i == len(targets):
                break
            prev, prev_t = frame, t
        while i < len(targets):  # the stream ended before a target: the last frame, if close enough
            if prev is None or targets[i] - prev_t > FRAME_TOLERANCE_S:
                ends = "no frame" if prev is None else f"the last frame at {prev_t:.2f} s"
                raise PrepareError(f"truncated video: key frame wanted at {targets[i]:.2f} s, "
                                   f"decoding gave {ends}")
            picked[i] = prev
            i += 1
        return [np.ascontiguousarray(f.to_ndarray(format="rgb24")) for f in picked]


def decode_video(path: Path, frames: int, rate: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(middle frame, K key frames, mono waveform at `rate`); PrepareError says what is wrong."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise PrepareError("no video stream")
            if not c.streams.audio:
                raise PrepareError("no audio stream (a silent video cannot train audio-visual models)")
            duration = _duration(c, c.streams.video[0])
        if duration is None or duration <= 0:
            duration = _scan_duration(path)
        wanted = sorted({duration / 2, *(key_times(duration, frames) if frames > 1 else [])})
        decoded = dict(zip(wanted, decode_frames(path, wanted), strict=True))
        wav = np.clip(decode_audio(path, rate)[0], -1.0, 1.0)  # EZ-VSL's loader: PyAV's mono resampler
    except PrepareError:
        raise
    except av.FFmpegError as err:
        raise PrepareError(f"corrupt or truncated file: {err}") from None
    except (OSError, ValueError, IndexError) as err:
        raise PrepareError(f"cannot decode: {type(err).__name__}: {err}") from None
    if wav.size == 0:
        raise PrepareError("the audio stream decodes to no samples")
    if wav.size / rate < MIN_AUDIO_COVERAGE * duration:
        raise PrepareError(f"truncated audio: {wav.size / rate:.2f} s of sound in a {duration:.2f} s video")
    keys = [decoded[t] for t in key_times(duration, frames)] if frames > 1 else []
    return decoded[duration / 2], keys, wav


# --- writing ---------------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _wav(wav: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def is_done(out_root: Path, sample_id: str, frames: int) -> bool:
    """Whether `sample_id` is complete (the frame is written last, so it marks completion)."""
    if (not (out_root / "audio" / f"{sample_id}.wav").is_file()
            or not (out_root / "frames" / f"{sample_id}.jpg").is_file()):
        return False
    if frames > 1:
        return all((out_root / "keyframes" / sample_id / f"{k:02d}.jpg").is_file() for k in range(frames))
    return True


def prepare_one(path: str | Path, sample_id: str, out_root: str | Path, config: PrepareConfig) -> dict:
    """Decode and write one video; returns {"file", "id", "status": "prepared"|"failed", "reason"}."""
    path, out_root = Path(path), Path(out_root)
    try:
        middle, keys, wav = decode_video(path, config.frames, config.rate)
        _atomic_write(out_root / "audio" / f"{sample_id}.wav", _wav(wav, config.rate))
        if keys:
            kdir = out_root / "keyframes" / sample_id
            kdir.mkdir(parents=True, exist_ok=True)
            for k, rgb in enumerate(keys):
                _atomic_write(kdir / f"{k:02d}.jpg", _jpeg(rgb, config.jpeg_quality))
        _atomic_write(out_root / "frames" / f"{sample_id}.jpg", _jpeg(middle, config.jpeg_quality))
    except PrepareError as err:
        return {"file": str(path), "id": sample_id, "status": "failed", "reason": str(err)}
    except Exception as err:  # noqa: BLE001 - one bad file must never stop the run; the report names it
        return {"file": str(path), "id": sample_id, "status": "failed",
                "reason": f"{type(err).__name__}: {err}"}
    return {"file": str(path), "id": sample_id, "status": "prepared", "reason": None}


def _task(args: tuple) -> dict:
    return prepare_one(*args)


def prepare_videos(videos_dir: str | Path, out_root: str | Path,
                   config: PrepareConfig = PrepareConfig()) -> PrepareResult:
    """Prepare every video of `videos_dir` into `out_root` (resumable; see the module docstring).

    With `config.workers` > 1 the videos are decoded in spawned processes, so a script that calls
    this needs the usual `if __name__ == "__main__":` guard (the CLI has it).
    """
    if config.frames < 1:
        raise SoundLensError(f"--frames must be >= 1, got {config.frames}")
    if config.rate < 8000:
        raise SoundLensError(f"--rate {config.rate} Hz is too low; the official front-ends use "
                             "16000 (or 22050)")
    if config.workers < 1:
        raise SoundLensError(f"--workers must be >= 1, got {config.workers}")
    videos = list_videos(videos_dir)
    if not videos:
        raise SoundLensError(f"{videos_dir} holds no video files ({', '.join(VIDEO_EXTENSIONS)})")
    out = Path(out_root)
    for d in ("frames", "audio"):
        (out / d).mkdir(parents=True, exist_ok=True)
    result = PrepareResult()
    todo: list[tuple] = []
    seen: dict[str, Path] = {}
    for path in videos:
        sample_id = video_id(path)
        if sample_id in seen:
            result.failed.append({"file": str(path), "id": sample_id, "status": "failed",
                                  "reason": f"duplicate id '{sample_id}' (also from {seen[sample_id].name}); "
                                            "rename one"})
            continue
        seen[sample_id] = path
        if is_done(out, sample_id, config.frames):
            result.already_done.append(sample_id)
        else:
            todo.append((str(path), sample_id, str(out), config))
    bar = tqdm(total=len(todo), desc="prepare", unit="video", disable=not config.progress)
    if config.workers > 1 and len(todo) > 1:
        # spawn: FFmpeg's decoder threads and a forked parent's locks do not mix
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(config.workers, len(todo)), mp_context=ctx) as pool:
            futures = {pool.submit(_task, args): args for args in todo}
            for fut in as_completed(futures):
                try:
                    rec = fut.result()
                except Exception as err:  # noqa: BLE001 - a crashed worker: report the video, keep going
                    args = futures[fut]
                    rec = {"file": args[0], "id": args[1], "status": "failed",
                           "reason": f"decoder process died ({type(err).__name__}); re-run to retry"}
                _collect(result, rec)
                bar.update(1)
    else:
        for args in todo:
            _collect(result, _task(args))
            bar.update(1)
    bar.close()
    result.prepared.sort()
    result.failed.sort(key=lambda r: r["file"])
    _write_outputs(out, Path(videos_dir), config, videos, result)
    return result


def _collect(result: PrepareResult, rec: dict) -> None:
    if rec["status"] == "prepared":
        result.prepared.append(rec["id"])
    else:
        result.failed.append(rec)


def _write_outputs(out: Path, videos_dir: Path, config: PrepareConfig, videos: list[Path],
                   result: PrepareResult) -> None:
    complete = sorted({normalize_id(p.stem) for p in (out / "frames").glob("*.jpg")}
                      & {normalize_id(p.stem) for p in (out / "audio").glob("*.wav")})
    if config.frames > 1:
        complete = [i for i in complete if is_done(out, i, config.frames)]
    result.list_path = out / "prepared.txt"
    _atomic_write(result.list_path, "".join(f"{i}\n" for i in complete).encode())
    report = {
        "videos_dir": str(videos_dir), "out_root": str(out), "settings": asdict(config),
        "n_videos": len(videos), "n_prepared": len(result.prepared),
        "n_already_done": len(result.already_done), "n_failed": len(result.failed),
        "n_complete": len(complete),
        "failed": [{k: r[k] for k in ("file", "id", "reason")} for r in result.failed],
        "prepared": result.prepared, "list_file": str(result.list_path),
    }
    result.report_path = out / "prepare_report.json"
    _atomic_write(result.report_path, (json.dumps(report, indent=2) + "\n").encode())
