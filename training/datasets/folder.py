"""The official `frames/<id>.jpg` + `audio/<id>.wav` layout as a torch Dataset (official_repos.md §4.1)."""

from __future__ import annotations

from pathlib import Path

from soundlens.models.errors import SoundLensError
from soundlens.training.datasets.annotations import AnnotationSet
from soundlens.training.datasets.media import read_rgb, read_wav_mono
from soundlens.training.splits import normalize_id, read_id_list
from torch.utils.data import Dataset


class AudioVisualFolder(Dataset):
    """Clips of `<root>/frames/<id>.jpg` + `<root>/audio/<id>.wav`, optionally restricted by a list.

    Like the official readers (EZ-VSL `get_train_dataset` / `get_test_dataset`), the samples are
    the sorted intersection of ids having both files and, when given, the list's ids; ids of the
    list with no files are kept in `missing`. Ids are normalised (`training.splits.normalize_id`).

    Each item is a dict: `id` (str), `frame` (uint8 [H, W, 3] RGB), `waveform` (float32 [N] mono),
    `sample_rate` (int, Hz), `gt` (float32 [224, 224] map; None without annotation or for a
    silent, box-less sample) and `class` (str or None).

    Args:
        root: dataset directory.
        list_file: optional id list (any form `training.splits.read_id_list` reads).
        annotations: optional boxes; a sample without an entry gets gt = None and class = None.
        clip_rule: VGG-SS box rule for the GT maps ("clip" or "max0", see `Protocol.gt_clip`).
        frames_dir, audio_dir: subdirectory names.
    """

    def __init__(self, root: str | Path, list_file: str | Path | None = None,
                 annotations: AnnotationSet | None = None, clip_rule: str = "clip",
                 frames_dir: str = "frames", audio_dir: str = "audio") -> None:
        self.root = Path(root)
        self.frames_path, self.audio_path = self.root / frames_dir, self.root / audio_dir
        for d in (self.frames_path, self.audio_path):
            if not d.is_dir():
                raise SoundLensError(f"{d} is missing; a dataset needs {frames_dir}/<id>.jpg and "
                                     f"{audio_dir}/<id>.wav")
        # ids are normalised (training.splits.normalize_id) so `<ytid>_<ms>_<ms>` files match
        # `<ytid>_<start:06d>` lists and annotations; the file stems are kept for reading.
        self._frames = {normalize_id(p.stem): p.name for p in self.frames_path.iterdir()
                        if p.suffix == ".jpg"}
        self._audio = {normalize_id(p.stem): p.name for p in self.audio_path.iterdir() if p.suffix == ".wav"}
        available = set(self._frames) & set(self._audio)
        self.missing: list[str] = []
        if list_file is not None:
            wanted = read_id_list(list_file).ids
            self.missing = sorted(set(wanted) - available)
            available &= set(wanted)
        self.ids: list[str] = sorted(available)
        self.annotations = annotations
        self.clip_rule = clip_rule
        self._silent = set(annotations.silent) if annotations is not None else set()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        sample_id = self.ids[index]
        waveform, rate = read_wav_mono(self.audio_path / self._audio[sample_id])
        ann = self.annotations
        known = ann is not None and sample_id in ann
        return {
            "id": sample_id,
            "frame": read_rgb(self.frames_path / self._frames[sample_id]),
            "waveform": waveform,
            "sample_rate": rate,
            "gt": ann.gt_map(sample_id, self.clip_rule) if known and sample_id not in self._silent else None,
            "class": ann.class_of(sample_id) if known else None,
        }
