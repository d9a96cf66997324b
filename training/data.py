"""Data SPECs -> datasets and loaders (style.md §2: open_clip's `data.py` with `DataInfo.set_epoch`).

A SPEC names where clips come from:

    procedural[:N][,seed=S][,size=PX][,objects=LO-HI][,silent=P][,distractor=P]
        N procedural pairs (training.synth.SynthPairs, default N 2000, seed 0, 224 px frames)
    DIR[,list=FILE][,ann=FILE]
        a prepared folder in the official layout (official_repos.md §4.1): DIR/frames/<id>.jpg +
        DIR/audio/<id>.wav (`soundlens data prepare` and `soundlens synth pairs` write it); the
        clips are the ids with both files, restricted to the list when given. Annotations (for
        evaluation) are DIR/annotations.json or the one other annotation JSON in DIR, or `ann=`.
    LIST_FILE
        a list file inside such a folder (e.g. OUT/train.txt): DIR = its folder.

Every dataset yields dicts with `id` (str), `frame` (uint8 [H, W, 3]), `waveform` (float32 [N])
and `sample_rate` (int); procedural items add `box`, `label`, `silent`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from soundlens.models.errors import SoundLensError
from soundlens.training.neighbours import ConceptualPositives, NeighbourIndex
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

DEFAULT_PROCEDURAL_N = 2000
# A held-out procedural split uses this seed offset: SynthPairs item i depends only on
# (seed, i), so another seed gives scenes the training split never drew.
HELDOUT_SEED_OFFSET = 1_000_003
# JSON files in a dataset folder that are not annotations.
_NOT_ANNOTATIONS = {"synth.json", "prepare_report.json", "config.json"}


@dataclass(frozen=True)
class DataSpec:
    """A parsed SPEC (see the module docstring)."""

    text: str
    kind: str  # "procedural" | "folder"
    n: int = DEFAULT_PROCEDURAL_N
    seed: int = 0
    image_size: int = 224
    min_objects: int = 1
    max_objects: int = 3
    silent_prob: float = 0.0
    distractor_prob: float = 0.0
    root: Path | None = None
    list_file: Path | None = None
    annotations: Path | None = None

    def scene_config(self):
        from soundlens.training.synth import SceneConfig  # synth (cv2, scipy, PyAV) only for procedural data

        return SceneConfig(image_size=self.image_size, min_objects=self.min_objects,
                           max_objects=self.max_objects, silent_prob=self.silent_prob,
                           distractor_prob=self.distractor_prob)

    def heldout(self, n: int | None = None) -> DataSpec:
        """A procedural split disjoint from this one (another seed), same scene settings."""
        if self.kind != "procedural":
            raise SoundLensError(f"{self.text}: only a procedural SPEC has a held-out split; pass --val SPEC")
        n = n if n is not None else max(16, min(500, self.n // 10))
        return replace(self, text=f"{self.text} (held out)", n=n, seed=self.seed + HELDOUT_SEED_OFFSET)


def _options(parts: list[str], spec: str) -> dict[str, str]:
    out = {}
    for part in parts:
        if "=" not in part:
            raise SoundLensError(f"data SPEC '{spec}': '{part}' is not key=value; see 'soundlens train "
                                 "--help'")
        key, value = part.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_spec(spec: str) -> DataSpec:
    """Parse a data SPEC; errors say what is wrong and show the accepted forms."""
    text = str(spec).strip()
    if not text:
        raise SoundLensError("empty data SPEC; pass procedural[:N] or a prepared folder")
    head, *rest = text.split(",")
    if head == "procedural" or head.startswith("procedural:"):
        return _procedural_spec(text, head, _options(rest, text))
    return _folder_spec(text, head, _options(rest, text))


PROCEDURAL_OPTIONS = {"seed": ("seed", int), "size": ("image_size", int), "silent": ("silent_prob", float),
                      "distractor": ("distractor_prob", float), "objects": None}


def _procedural_spec(text: str, head: str, opts: dict[str, str]) -> DataSpec:
    """procedural[:N][,seed=S][,size=PX][,objects=LO-HI][,silent=P][,distractor=P]"""
    try:
        n = int(head.split(":", 1)[1]) if ":" in head else DEFAULT_PROCEDURAL_N
    except ValueError:
        raise SoundLensError(f"data SPEC '{text}': N must be an integer, e.g. procedural:2000") from None
    if n <= 0:
        raise SoundLensError(f"data SPEC '{text}': N must be > 0")
    unknown = sorted(set(opts) - set(PROCEDURAL_OPTIONS))
    if unknown:
        raise SoundLensError(f"data SPEC '{text}': unknown option(s) {unknown}; "
                             f"options: {sorted(PROCEDURAL_OPTIONS)}")
    kw: dict = {}
    try:
        for key, value in opts.items():
            if key == "objects":
                lo, _, hi = value.partition("-")
                kw["min_objects"], kw["max_objects"] = int(lo), int(hi or lo)
            else:
                field_name, kind = PROCEDURAL_OPTIONS[key]
                kw[field_name] = kind(value)
    except ValueError:
        raise SoundLensError(f"data SPEC '{text}': option values must be numbers (objects=LO-HI)") from None
    out = DataSpec(text, "procedural", n=n, **kw)
    out.scene_config()  # validate now
    return out


def _folder_spec(text: str, head: str, opts: dict[str, str]) -> DataSpec:
    """A prepared folder (frames/ + audio/) or a list file inside one[,list=FILE][,ann=FILE]."""
    unknown = sorted(set(opts) - {"list", "ann"})
    if unknown:
        raise SoundLensError(f"data SPEC '{text}': unknown option(s) {unknown}; "
                             "a folder takes list=FILE, ann=FILE")
    path = Path(head)
    list_file = Path(opts["list"]) if "list" in opts else None
    if path.is_file():
        root, list_file = path.parent, path
    elif path.is_dir():
        root = path
    else:
        raise SoundLensError(f"data SPEC '{text}': {path} does not exist; pass procedural[:N], a folder with "
                             "frames/ and audio/ (see 'soundlens data prepare'), or a list file inside one")
    if not (root / "frames").is_dir() or not (root / "audio").is_dir():
        raise SoundLensError(f"{root} has no frames/ and audio/ folders; prepare videos with "
                             f"'soundlens data prepare VIDEOS_DIR {root}'")
    if list_file is not None and not list_file.is_file():
        raise SoundLensError(f"data SPEC '{text}': list file {list_file} does not exist")
    ann = Path(opts["ann"]) if "ann" in opts else _find_annotations(root)
    if ann is not None and not ann.exists():
        raise SoundLensError(f"data SPEC '{text}': annotation file {ann} does not exist")
    return DataSpec(text, "folder", root=root, list_file=list_file, annotations=ann)


def _find_annotations(root: Path) -> Path | None:
    if (root / "annotations.json").is_file():
        return root / "annotations.json"
    candidates = sorted(p for p in root.glob("*.json") if p.name not in _NOT_ANNOTATIONS)
    return candidates[0] if len(candidates) == 1 else None


# --- datasets ------------------------------------------------------------------------------
class ProceduralClips(Dataset):
    """SynthPairs items without the per-pixel mask (not needed to train or score)."""

    def __init__(self, spec: DataSpec):
        from soundlens.training.synth import SynthPairs  # synth (cv2, scipy, PyAV): procedural data only

        self.spec = spec
        self.pairs = SynthPairs(spec.n, seed=spec.seed, config=spec.scene_config())

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        item = self.pairs[i]
        item.pop("mask", None)
        return item


class FolderClips(Dataset):
    """Clips of a prepared folder (`AudioVisualFolder`), optionally restricted to `ids`."""

    def __init__(self, spec: DataSpec, ids: list[str] | None = None):
        from soundlens.training.datasets import AudioVisualFolder  # datasets (PyAV): prepared folders only

        self.spec = spec
        self.folder = AudioVisualFolder(spec.root, spec.list_file)
        if ids is not None:
            have = set(self.folder.ids)
            self.folder.ids = [i for i in ids if i in have]
        if not len(self.folder):
            where = f" listed in {spec.list_file}" if spec.list_file else ""
            raise SoundLensError(f"{spec.root} has no clip{where} with both frames/<id>.jpg "
                                 "and audio/<id>.wav")

    @property
    def ids(self) -> list[str]:
        return self.folder.ids

    @property
    def root(self) -> Path:
        return Path(self.spec.root)

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict:
        item = self.folder[i]
        return {"id": item["id"], "frame": torch.from_numpy(item["frame"]),
                "waveform": torch.from_numpy(item["waveform"]), "sample_rate": int(item["sample_rate"])}


class InMemory(Dataset):
    """Every item of `dataset` generated once and kept: reused across epochs and methods (procedural
    items are deterministic per index, so this changes speed, not data)."""

    def __init__(self, dataset: Dataset):
        self.items = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def build_dataset(spec: DataSpec | str) -> Dataset:
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    return ProceduralClips(spec) if spec.kind == "procedural" else FolderClips(spec)


def collate_clips(items: list[dict]) -> dict:
    """Stack clips when their frames, waveforms and rates agree (procedural data); otherwise keep
    per-clip lists (real videos differ in size and length) and `engine.model_inputs` prepares
    each clip on its own. Other keys are collated as usual."""
    frames = [it["frame"] for it in items]
    waves = [it["waveform"] for it in items]
    rates = [int(it["sample_rate"]) for it in items]
    uniform = (len({tuple(f.shape) for f in frames}) == 1 and len({w.shape[-1] for w in waves}) == 1
               and len(set(rates)) == 1)
    if uniform:
        return default_collate(items)
    listed = ("frame", "waveform", "conc_frame", "conc_waveform")  # conceptual positives: the same rule
    rest = {k: default_collate([it[k] for it in items]) for k in items[0] if k not in listed}
    rest.update({k: [it[k] for it in items] for k in listed if k in items[0]})
    return rest


@dataclass
class DataInfo:
    """A loader and its sampler; `set_epoch` reshuffles the shards each epoch (open_clip)."""

    dataset: Dataset
    loader: DataLoader
    sampler: DistributedSampler | None = None
    spec: DataSpec | None = None

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)


def train_data(spec: DataSpec | str, global_batch: int, rank: int = 0, world_size: int = 1, workers: int = 0,
               seed: int = 0, neighbours: str | Path | None = None) -> DataInfo:
    """The training loader of this rank.

    `global_batch` is the batch over the whole job, split evenly across ranks (EZ-VSL's rule:
    its 128 is divided among the GPUs, realtime_ecosystem.md §F), so a run's optimisation does not
    depend on the number of processes. A DistributedSampler shards and shuffles by (seed, epoch)
    even for one process, so --resume continues the same order; ragged last batches are dropped
    so every rank steps the same number of times with equal shards. `neighbours`: a neighbour
    index (`soundlens data neighbours`) whose conceptual positives join every item (SSL-Align).
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if global_batch < world_size or global_batch % world_size:
        raise SoundLensError(f"--batch-size {global_batch} must be a multiple of the {world_size} processes")
    per_rank = global_batch // world_size
    dataset = build_dataset(spec)
    if neighbours is not None:
        dataset = ConceptualPositives(dataset, NeighbourIndex.load(neighbours))
    if len(dataset) < global_batch:
        raise SoundLensError(f"{spec.text} has {len(dataset)} clips, fewer than --batch-size {global_batch}; "
                             "use more data or a smaller batch")
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=workers,
                        collate_fn=collate_clips, persistent_workers=workers > 0, pin_memory=False)
    return DataInfo(dataset, loader, sampler, spec)


# --- evaluation sets -------------------------------------------------------------------------
@dataclass
class EvalData:
    """Clips to score and their annotations.

    `annotations` is an `AnnotationSet` for a folder; for procedural data it is None and the
    trainer builds it from the items (`procedural_records`), exactly as `write_pairs` writes
    annotations.json.
    """

    spec: DataSpec
    dataset: Dataset
    annotations: object | None = None
    missing: list[str] = field(default_factory=list)  # annotated ids without files


def eval_data(spec: DataSpec | str, allow_missing: bool = False) -> EvalData:
    """The clips of `spec` that have annotations (all of them for procedural data)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "procedural":
        return EvalData(spec, ProceduralClips(spec))
    if spec.annotations is None:
        raise SoundLensError(f"{spec.root} has no annotations (annotations.json or one VGG-SS-format JSON); "
                             f"pass them as '{spec.root},ann=FILE'")
    from soundlens.training.datasets import load_annotations  # datasets (PyAV): annotated folders only

    ann = load_annotations(spec.annotations, warn=False)
    clips = FolderClips(spec, ids=[i for i in ann.ids])
    have = set(clips.ids)
    missing = [i for i in ann.ids if i not in have]
    if missing and not allow_missing:
        raise SoundLensError(f"{len(missing)} of {len(ann)} annotated clips have no frame/audio "
                             f"in {spec.root} (e.g. {missing[:3]}); add them or pass --allow-missing "
                             "to score the rest")
    return EvalData(spec, clips, ann, missing)


def procedural_records(batch: dict, image_size: int) -> list[dict]:
    """VGG-SS-format records {file, class, bbox} of a collated procedural batch, as `write_pairs`
    writes them (boxes normalised by the frame side and rounded to 6 decimals; [] when silent)."""
    from soundlens.training.synth import CLASSES  # synth (cv2, scipy, PyAV): procedural batches only

    out = []
    boxes = np.asarray(batch["box"], dtype=np.float64)
    for k, sample_id in enumerate(batch["id"]):
        silent = bool(batch["silent"][k])
        bbox = [] if silent else [[round(float(c) / image_size, 6) for c in boxes[k]]]
        out.append({"file": sample_id, "class": CLASSES[int(batch["label"][k])], "bbox": bbox})
    return out


def spec_summary(spec: DataSpec) -> dict:
    """JSON-ready description of a SPEC for logs and checkpoints."""
    d = {"spec": spec.text, "kind": spec.kind}
    if spec.kind == "procedural":
        d.update(n=spec.n, seed=spec.seed, image_size=spec.image_size,
                 objects=[spec.min_objects, spec.max_objects])
    else:
        d.update(root=str(spec.root), list=str(spec.list_file) if spec.list_file else None,
                 annotations=str(spec.annotations) if spec.annotations else None)
    return json.loads(json.dumps(d))
