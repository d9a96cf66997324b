"""AVSBench S4 / MS3 in the official layout (official_repos.md §2.9) as torch Datasets.

S4 (`<root>` = `avsbench_data/Single-source`): `s4_meta_data.csv` (name, start, category, split),
`s4_data/visual_frames/<split>/<category>/<video>/<video>_<k>.png`, `s4_data/gt_masks/...` (same
tree; train has mask 1 only), `s4_data/audio_wav/<split>/<category>/<video>.wav`.
MS3 (`<root>` = `avsbench_data/Multi-sources`): `ms3_meta_data.csv` (video_id, split),
`ms3_data/visual_frames/<video>/<video>.mp4_<k>.png`, `ms3_data/gt_masks/<split>/<video>/<video>_<k>.png`,
`ms3_data/audio_wav/<split>/<video>.wav`. Frames k = 1..5, one per second.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.training.datasets.media import read_mask, read_rgb, read_wav_mono
from torch.utils.data import Dataset

FRAMES_PER_VIDEO = 5
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class AVSVideo:
    """One row of an AVSBench meta CSV."""

    name: str
    split: str
    category: str | None = None  # S4 only
    start: int | None = None  # S4 only: start second in the source video


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise SoundLensError(f"{path} does not exist; point --root at the AVSBench directory holding "
                             "it") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise SoundLensError(f"{path} is not a UTF-8 CSV file ({err}); use the metadata "
                             "CSV AVSBench ships") from None


def read_s4_meta(path: str | Path) -> list[AVSVideo]:
    """`s4_meta_data.csv` -> videos in file order (columns name, start, category, split)."""
    rows = _rows(Path(path))
    if rows and not {"name", "category", "split"} <= set(rows[0]):
        raise SoundLensError(f"{path}: expected columns name,start,category,split")
    try:
        return [AVSVideo(r["name"], r["split"], r["category"], int(r["start"]) if r.get("start") else None)
                for r in rows]
    except ValueError as err:
        raise SoundLensError(f"{path}: the start column must hold whole seconds ({err})") from None


def read_ms3_meta(path: str | Path) -> list[AVSVideo]:
    """`ms3_meta_data.csv` -> videos in file order (columns video_id, split)."""
    rows = _rows(Path(path))
    if rows and not {"video_id", "split"} <= set(rows[0]):
        raise SoundLensError(f"{path}: expected columns video_id,split")
    return [AVSVideo(r["video_id"], r["split"]) for r in rows]


class _AVSBench(Dataset):
    setting = ""

    def __init__(self, root: str | Path, split: str = "test", meta_csv: str | Path | None = None,
                 load_audio: bool = True) -> None:
        if split not in SPLITS:
            raise SoundLensError(f"unknown AVSBench split '{split}'; use one of {', '.join(SPLITS)}")
        self.root, self.split, self.load_audio = Path(root), split, load_audio
        meta = Path(meta_csv) if meta_csv else self.root / f"{self.setting}_meta_data.csv"
        self.videos = [v for v in self._read_meta(meta) if v.split == split]
        self.data = self.root / f"{self.setting}_data"

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        """A video: `id`, `frames` uint8 [5, H, W, 3], `masks` float32 [k, H, W] (0/1),
        `waveform` float32 [N] or None, `sample_rate` int or None, `class` (S4 category or None), `split`."""
        v = self.videos[index]
        frames = np.stack([read_rgb(self.frame_path(v, k)) for k in range(1, FRAMES_PER_VIDEO + 1)])
        masks = np.stack([read_mask(self.mask_path(v, k)) for k in range(1, self.n_masks + 1)])
        waveform, rate = read_wav_mono(self.audio_path(v)) if self.load_audio else (None, None)
        return {"id": v.name, "frames": frames, "masks": masks, "waveform": waveform, "sample_rate": rate,
                "class": v.category, "split": v.split}


class AVSBenchS4(_AVSBench):
    """AVSBench single-source (S4) videos of one split."""

    setting = "s4"
    _read_meta = staticmethod(read_s4_meta)

    @property
    def n_masks(self) -> int:
        return 1 if self.split == "train" else FRAMES_PER_VIDEO  # §2.9: train has mask 1 only

    def frame_path(self, v: AVSVideo, k: int) -> Path:
        return self.data / "visual_frames" / v.split / v.category / v.name / f"{v.name}_{k}.png"

    def mask_path(self, v: AVSVideo, k: int) -> Path:
        return self.data / "gt_masks" / v.split / v.category / v.name / f"{v.name}_{k}.png"

    def audio_path(self, v: AVSVideo) -> Path:
        return self.data / "audio_wav" / v.split / v.category / f"{v.name}.wav"


class AVSBenchMS3(_AVSBench):
    """AVSBench multi-source (MS3) videos of one split (5 masks in every split)."""

    setting = "ms3"
    _read_meta = staticmethod(read_ms3_meta)
    n_masks = FRAMES_PER_VIDEO

    def frame_path(self, v: AVSVideo, k: int) -> Path:
        # The official dataloader reads `<video>.mp4_<k>.png` (its preprocessing script writes
        # `<video>_<k>.png`); take whichever exists.
        folder = self.data / "visual_frames" / v.name
        official = folder / f"{v.name}.mp4_{k}.png"
        return (official if official.exists() or not (folder / f"{v.name}_{k}.png").exists()
                else folder / f"{v.name}_{k}.png")

    def mask_path(self, v: AVSVideo, k: int) -> Path:
        return self.data / "gt_masks" / v.split / v.name / f"{v.name}_{k}.png"

    def audio_path(self, v: AVSVideo) -> Path:
        return self.data / "audio_wav" / v.split / f"{v.name}.wav"
