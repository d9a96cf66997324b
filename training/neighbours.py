"""Conceptual positives for SSL-Align (paper 2 §3.2): nearest neighbours mined once, drawn per item.

"Given a pair of image and audio, we compute cosine similarity with all other samples and choose the
top-k most similar samples among the training set for each modality. From a set of k samples, we
randomly select one sample to obtain conceptually similar samples for each modality."

    index = mine_neighbours(dataset, k=10, checkpoint="runs/ezvsl.safetensors")   # or encoder files
    index.save(default_index_path(dataset))                                      # <root>/neighbours.npz
    train_set = ConceptualPositives(dataset, NeighbourIndex.load(default_index_path(dataset)))

The encoders are the user's: a SoundLens checkpoint (its `embed()`), or local pretrained trunk files
(e.g. torchvision's ImageNet ResNet-18 and an audio ResNet-18), globally average-pooled. Nothing is
downloaded. Without an index the `sslalign` method uses the original sample as its conceptual
positive (models/methods/sslalign.py).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from soundlens import models
from soundlens.models.errors import SoundLensError
from torch.utils.data import Dataset

INDEX_NAME = "neighbours.npz"


@dataclass
class NeighbourIndex:
    """Top-k neighbours of every item, per modality: int arrays [N, k] of dataset indices (self excluded)."""

    image: np.ndarray
    audio: np.ndarray
    ids: list[str] = field(default_factory=list)  # the dataset's ids at mining time (may be empty)
    meta: dict = field(default_factory=dict)  # k, encoder, presets

    def __len__(self) -> int:
        return len(self.image)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:  # a file object, so numpy keeps the exact name
            np.savez(f, image=self.image.astype(np.int64), audio=self.audio.astype(np.int64),
                     ids=np.array(self.ids, dtype=str), meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> NeighbourIndex:
        path = Path(path)
        if not path.is_file():
            raise SoundLensError(f"neighbour index not found: {path}; mine one with 'soundlens "
                                 "data neighbours'")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["image"], z["audio"], [str(i) for i in z["ids"]], json.loads(str(z["meta"])))
        # never unpickled: allow_pickle=False
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise SoundLensError(f"{path} is not a readable neighbour index ({err}); mine it again with "
                                 "'soundlens data neighbours'") from None


def default_index_path(dataset) -> Path:
    """`<dataset root>/neighbours.npz`, next to the data (datasets with a `root`, e.g. AudioVisualFolder)."""
    root = getattr(dataset, "root", None)
    if root is None:
        raise SoundLensError("this dataset has no root directory; give the index path explicitly")
    return Path(root) / INDEX_NAME


def _dataset_ids(dataset) -> list[str]:
    ids = getattr(dataset, "ids", None)
    return [str(i) for i in ids] if ids is not None else []


class _TrunkEmbedder:
    """Global-average-pooled ResNet trunks loaded from local weight files, one per modality."""

    def __init__(self, image_encoder, audio_encoder, arch, image_preset, audio_preset, device):
        self.imgnet, self.audnet = models.build_encoder(arch, 3), models.build_encoder(arch, 1)
        models.load_pretrained(self.imgnet, image_encoder)
        models.load_pretrained(self.audnet, audio_encoder)
        self.imgnet.to(device).eval()
        self.audnet.to(device).eval()
        self.image_preset = models.image_preset(image_preset)
        self.frontend = models.AudioFrontend(models.audio_preset(audio_preset))
        self.device = device

    def prepare(self, frames, waveforms, rate, train=False):
        return (models.prepare_images(frames, self.image_preset, device=self.device),
                self.frontend(torch.as_tensor(np.asarray(waveforms)).to(self.device), rate))

    def embed(self, images, specs):
        return F.normalize(self.imgnet(images).mean(dim=(2, 3)), dim=1), \
            F.normalize(self.audnet(specs).mean(dim=(2, 3)), dim=1)


@torch.inference_mode()
def embed_dataset(dataset, checkpoint: str | Path | None = None, image_encoder: str | Path | None = None,
                  audio_encoder: str | Path | None = None, arch: str = "resnet18",
                  image_preset: str = "ezvsl", audio_preset: str = "sslalign", batch_size: int = 32,
                  device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and audio embeddings [N, D] of every item, with the named encoder(s)."""
    if checkpoint is not None:
        encoder = models.load(checkpoint, device=device)
    elif image_encoder is not None and audio_encoder is not None:
        encoder = _TrunkEmbedder(image_encoder, audio_encoder, arch, image_preset, audio_preset, device)
    else:
        raise SoundLensError("name the encoder to mine neighbours with: a SoundLens checkpoint, or both "
                             "an image and an audio encoder weights file")
    img_out, aud_out, pending = [], [], []

    def flush():
        images = torch.cat([p[0] for p in pending])
        specs = torch.cat([p[1] for p in pending])
        v, a = encoder.embed(images, specs)
        img_out.append(v.float().cpu())
        aud_out.append(a.float().cpu())
        pending.clear()

    for i in range(len(dataset)):
        item = dataset[i]
        wav = torch.as_tensor(np.asarray(item["waveform"]), dtype=torch.float32)[None]
        pending.append(encoder.prepare(np.asarray(item["frame"])[None], wav, int(item["sample_rate"])))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    if not img_out:
        raise SoundLensError("the dataset is empty")
    return torch.cat(img_out), torch.cat(aud_out)


def top_k(embeddings: torch.Tensor, k: int, chunk: int = 4096) -> np.ndarray:
    """Indices [N, k] of each row's k most cosine-similar other rows (rows L2-normalised), in chunks."""
    n = embeddings.shape[0]
    if not 1 <= k < n:
        raise SoundLensError(f"k must be between 1 and N - 1 = {n - 1}, got {k}")
    out = []
    for start in range(0, n, chunk):
        sims = embeddings[start:start + chunk] @ embeddings.t()
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = float("-inf")  # never one's own neighbour
        out.append(sims.topk(k, dim=1).indices)
    return torch.cat(out).numpy()


def mine_neighbours(dataset, k: int = 10, **encoder) -> NeighbourIndex:
    """Top-k neighbours per modality (paper 2 §3.2; k is not given in the paper text, 10 is SoundLens'
    default). `encoder`: checkpoint=..., or image_encoder=... and audio_encoder=... (see embed_dataset)."""
    img, aud = embed_dataset(dataset, **encoder)
    source = {key: str(value) for key, value in encoder.items() if value is not None}
    return NeighbourIndex(top_k(img, k), top_k(aud, k), _dataset_ids(dataset), {"k": k, **source})


class ConceptualPositives(Dataset):
    """`dataset` items plus a conceptual positive per modality, redrawn on every access:
    `conc_frame` = the frame of one of the item's k image neighbours, `conc_waveform` = the waveform
    of one of its k audio neighbours (torch's RNG, so `torch.manual_seed` and worker seeding apply).
    The neighbours' waveforms must share the item's sample rate (one rate per dataset)."""

    def __init__(self, dataset, index: NeighbourIndex):
        if len(index) != len(dataset):
            raise SoundLensError(f"the neighbour index has {len(index)} items but the dataset "
                                 f"{len(dataset)}; mine it again for this dataset")
        ids = _dataset_ids(dataset)
        if index.ids and ids and index.ids != ids:
            raise SoundLensError("the neighbour index was mined on other clips than this dataset's; mine it "
                                 "again")
        self.dataset, self.index = dataset, index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        j = int(self.index.image[i][torch.randint(self.index.image.shape[1], ()).item()])
        m = int(self.index.audio[i][torch.randint(self.index.audio.shape[1], ()).item()])
        item["conc_frame"] = self.dataset[j]["frame"]
        audio_item = self.dataset[m]
        if int(audio_item["sample_rate"]) != int(item["sample_rate"]):
            raise SoundLensError(f"item {m} is at {audio_item['sample_rate']} Hz but item {i} at "
                                 f"{item['sample_rate']} Hz; resample the dataset to one rate")
        item["conc_waveform"] = audio_item["waveform"]
        item["conc_index"] = torch.tensor([j, m])
        return item
