"""SoundLens checkpoints: safetensors tensors + JSON metadata. Nothing is ever unpickled.

Metadata keys (all strings, as safetensors requires): `format` ("soundlens.checkpoint"),
`format_version`, `method`, `config` (JSON of the method config), `audio_preset`, `image_preset`
(JSON), `soundlens_version`, `trained_on` (JSON, free-form: dataset, steps, metrics).
"""

from __future__ import annotations

import json
import os
import struct
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from soundlens.models.errors import SoundLensError
from soundlens.models.presets import preset_dict
from soundlens.models.pretrained import cached_path, pull_command, releases
from soundlens.models.registry import create, method_entry

FORMAT = "soundlens.checkpoint"
FORMAT_VERSION = "1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_MAX_HEADER = 100 * 1024 * 1024


def soundlens_version() -> str:
    try:
        return version("soundlens")
    except Exception:
        return "0+unknown"


def describe(model) -> dict:
    """What a model is, as JSON-ready data: method, config and presets."""
    return {
        "method": model.method,
        "config": model.config.to_dict(),
        "audio_preset": preset_dict(model.audio_preset),
        "image_preset": preset_dict(model.image_preset),
    }


def save(model, path: str | Path, trained_on: dict | None = None) -> Path:
    """Write `model` to a .safetensors file (atomically) that `load` rebuilds from alone."""
    info = describe(model)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": info["method"],
        "config": json.dumps(info["config"]),
        "audio_preset": json.dumps(info["audio_preset"]),
        "image_preset": json.dumps(info["image_preset"]),
        "soundlens_version": soundlens_version(),
        "trained_on": json.dumps(trained_on or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def _is_tensor_entry(entry) -> bool:
    """A safetensors index entry: {"dtype", "shape", "data_offsets": [begin, end]} with 0 <= begin <= end."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    return (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] and isinstance(entry.get("shape"), list))


def read_header(path: Path) -> tuple[dict, dict]:
    """(tensor index, metadata) of a safetensors file, with a clear error for anything else."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)
        n = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
        if len(head) < 9 or head[8:9] != b"{" or n > min(_MAX_HEADER, size - 8):
            if head[:2] == b"PK" or head[:1] == b"\x80":
                raise SoundLensError(
                    f"{path} is a PyTorch pickle checkpoint, which SoundLens never unpickles; convert an "
                    "official release with 'soundlens import --from METHOD SRC.pth -o OUT.safetensors'")
            raise SoundLensError(f"{path} is not a safetensors file or is truncated ({size} bytes); "
                                 "re-download or re-save it")
        try:
            index = json.loads(head[8:] + f.read(n - 1))
        except ValueError:
            index = None
    metadata = index.pop("__metadata__", {}) if isinstance(index, dict) else None
    if not (isinstance(metadata, dict) and all(_is_tensor_entry(t) for t in index.values())):
        raise SoundLensError(f"{path} has a corrupt safetensors header; re-download or re-save it")
    end = max((t["data_offsets"][1] for t in index.values()), default=0)
    if 8 + n + end > size:
        raise SoundLensError(f"{path} is truncated: {size} bytes on disk, {8 + n + end} expected; "
                             "re-download or re-save it")
    return index, metadata


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint path, a model shipped with SoundLens by name (e.g. "default"), or a released model
    pulled with `soundlens models pull NAME` (found in the cache, `models.pretrained.cached_path`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = WEIGHTS_DIR / f"{name_or_path}.safetensors"
    if shipped.is_file():
        return shipped
    if str(name_or_path) in releases():
        pulled = cached_path(str(name_or_path))
        if pulled.is_file():
            return pulled
        raise SoundLensError(f"'{name_or_path}' is a released model that is not downloaded yet: run "
                             f"'{pull_command(str(name_or_path))}' once")
    hint = ""
    try:
        method_entry(str(name_or_path))
        hint = f" ('{name_or_path}' is a method: train it with 'soundlens train --method {name_or_path}')"
    except SoundLensError:
        pass
    raise SoundLensError(f"checkpoint not found: {name_or_path}{hint}; give a .safetensors path, "
                         "'default' or a released model ('soundlens models --pretrained' lists them)")


def load(name_or_path: str | Path, device: str | torch.device | None = None):
    """Rebuild a model from a SoundLens checkpoint alone (method, config and weights), in eval mode."""
    path = resolve(name_or_path)
    _, meta = read_header(path)
    if meta.get("format") != FORMAT:
        raise SoundLensError(
            f"{path} is a safetensors file but not a SoundLens checkpoint (no '{FORMAT}' metadata); if it "
            "holds an official model's weights, convert it with 'soundlens import'")
    if meta.get("format_version") != FORMAT_VERSION:
        raise SoundLensError(f"{path} uses checkpoint format {meta.get('format_version')}; this SoundLens "
                             f"reads format {FORMAT_VERSION}: upgrade SoundLens")
    config = json.loads(meta["config"])
    config.setdefault("lite_padding", "zeros")  # written before the field existed: trained with zero padding
    # The image-trunk file only initialised training (the checkpoint holds the trained trunk): it is
    # recorded, not read, so a checkpoint loads where that file is not.
    initialised_from = config.pop("pretrained_image", None)
    model = create(meta["method"], **config)
    model.config.pretrained_image = initialised_from
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SoundLensError(f"{path} does not match method {meta['method']}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    model.trained_on = json.loads(meta.get("trained_on", "{}"))
    return model.to(device or "cpu").eval()
