"""Frame + audio pairs: the lazy torch dataset and the on-disk VGG-SS-style layout."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
import torch
from soundlens.models.errors import SoundLensError
from soundlens.training.synth.classes import CLASSES
from soundlens.training.synth.scene import Scene, SceneConfig, make_scene
from torch.utils.data import Dataset
from tqdm import tqdm


def item_id(i: int) -> str:
    """The id of pair `i` in files and annotations, e.g. `synth_000123`."""
    return f"synth_{i:06d}"


def item_scene(seed: int, i: int, config: SceneConfig) -> Scene:
    """Scene `i` of the dataset with `seed`: a pure function of (seed, i, config)."""
    if seed < 0 or i < 0:
        raise SoundLensError(f"seed ({seed}) and index ({i}) must be >= 0")
    return make_scene(np.random.default_rng(np.random.SeedSequence([seed, i])), config)


class SynthPairs(Dataset):
    """`n` procedural scenes, generated on access; item `i` depends only on (seed, i, config).

    Items are dicts that `default_collate` stacks: frame uint8 [H, W, 3], waveform float32 [N],
    box float32 [4] (pixels, zeros when silent), mask bool [H, W], plus sample_rate, label,
    n_objects (int), silent (bool) and id (str).
    """

    def __init__(self, n: int, seed: int = 0, config: SceneConfig = SceneConfig()):
        if n < 0 or seed < 0:
            raise SoundLensError(f"SynthPairs needs n >= 0 and seed >= 0, got n={n}, seed={seed}")
        self.n, self.seed, self.config = n, seed, config

    def __len__(self) -> int:
        return self.n

    def scene(self, i: int) -> Scene:
        """The full `Scene` behind item `i` (all objects, distractor, ...)."""
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for SynthPairs of length {self.n}")
        return item_scene(self.seed, i, self.config)

    def __getitem__(self, i: int) -> dict:
        scene = self.scene(int(i))
        return {
            "frame": torch.from_numpy(scene.frame),
            "waveform": torch.from_numpy(scene.waveform),
            "sample_rate": scene.sample_rate,
            "box": torch.from_numpy(scene.box),
            "mask": torch.from_numpy(scene.mask),
            "label": scene.label,
            "n_objects": len(scene.objects),
            "silent": scene.silent,
            "id": item_id(int(i)),
        }


def _write_item(out_dir: Path, seed: int, config: SceneConfig, i: int) -> dict:
    scene = item_scene(seed, i, config)
    name = item_id(i)
    cv2.imwrite(str(out_dir / "frames" / f"{name}.jpg"), scene.frame[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    sf.write(str(out_dir / "audio" / f"{name}.wav"), scene.waveform, scene.sample_rate, subtype="PCM_16")
    bbox = [] if scene.silent else [[round(float(c) / config.image_size, 6) for c in scene.box]]
    return {"file": name, "class": CLASSES[scene.label], "bbox": bbox}


def write_pairs(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    config: SceneConfig = SceneConfig(),
    workers: int = 1,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write `n` pairs in the layout VGG-SS readers expect; returns `out_dir`.

    out_dir/frames/<id>.jpg (RGB, quality 95), out_dir/audio/<id>.wav (16-bit PCM mono at
    config.sample_rate), annotations.json (list of {"file", "class", "bbox": [[x1, y1, x2, y2]]}
    normalised to [0, 1], empty for silent scenes), train.txt (ids), synth.json (seed + config).
    Files equal `SynthPairs(n, seed, config)` items. `workers` > 1 uses that many processes.
    """
    out = Path(out_dir)
    if n <= 0:
        raise SoundLensError(f"--n must be a positive number of pairs, got {n}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SoundLensError(f"{out} is not empty; choose a new directory or pass overwrite (--overwrite)")
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)

    write = functools.partial(_write_item, out, seed, config)
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        chunk = max(1, min(64, n // (4 * workers)))
        items = pool.map(write, range(n), chunksize=chunk) if pool else map(write, range(n))
        annotations = list(tqdm(items, total=n, desc="synth pairs", unit="pair", disable=not progress))

    (out / "annotations.json").write_text(json.dumps(annotations, indent=1))
    (out / "train.txt").write_text("".join(f"{a['file']}\n" for a in annotations))
    meta = {"generator": "soundlens.training.synth", "version": 1, "seed": seed, "n": n,
            "config": asdict(config), "classes": list(CLASSES)}
    (out / "synth.json").write_text(json.dumps(meta, indent=1))
    return out
