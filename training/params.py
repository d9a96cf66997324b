"""Trainer options: typed configs with the papers' defaults, a JSON config file, and the CLI flags.

Layering (lowest first): `TrainConfig` defaults (EZ-VSL's recipe) -> the method's recipe
(its `Recipe`, in the method's file) -> `--config FILE` (JSON) -> command-line flags. Flags default to None
and are dropped when unset (style.md §1 timm `create_model`, §4 torchrun `config_from_args`), so an unset flag
never overrides a lower layer. The same parser serves `soundlens train` and `torchrun -m
soundlens.training.main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.models.registry import method_entry
from soundlens.training import protocols


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults are EZ-VSL's recipe (official_repos.md §2.1: Adam, lr 1e-4,
    no weight decay, no schedule, batch 128, 20 epochs on the 144k sets); other methods' recipes
    are in each method file's `Recipe`."""

    epochs: int = 20
    batch_size: int = 128  # EZ-VSL / SLAVC / SIRA official batch (official_repos.md §2.1); global over ranks
    lr: float = 1e-4  # Adam lr of EZ-VSL, SLAVC (§2.1, §2.2)
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off
    num_workers: int = 0
    seed: int = 0
    amp: bool = True  # bfloat16 autocast on CUDA only
    augment: bool = True  # random crop + flip (the official training transform)
    optimizer: str = "adam"  # "adam" (EZ-VSL, SLAVC) or "adamw" (JSA, §2.8)
    log_every: int = 10  # steps between log.jsonl step records
    deterministic: bool = False  # torch deterministic algorithms (training.reproducibility)
    # "constant" (EZ-VSL, SLAVC: no schedule, §2.1) or "cosine" (to 0 at the end)
    lr_schedule: str = "constant"


def recipe(method: str):
    """The method's `models.registry.Recipe` (declared in its own file)."""
    return method_entry(method).recipe


def short_run_options(method: str) -> dict:
    """Method options of `method` for short runs on procedural pairs (its Recipe; reasons there)."""
    return dict(recipe(method).short_run_options)


def short_run_lr(method: str) -> float:
    """Adam learning rate of `method` in a short run (its Recipe: 1e-3 unless it names another)."""
    return recipe(method).short_run_lr


def short_run_schedule(method: str) -> str:
    """Learning-rate schedule of `method` in a short run (its Recipe: constant unless it names another)."""
    return recipe(method).short_run_schedule


@dataclass
class RunConfig:
    """One training run.

    Attributes:
        method: registered method name (`soundlens models`).
        data: training data SPEC (training.data: `procedural[:N]` or a prepared folder).
        out: output directory (checkpoints, log.jsonl, config.json); default runs/<method>.
        val: validation SPEC; None = a held-out procedural split for procedural data, else none.
        val_pairs: size of that held-out split (None: N / 10, between 16 and 500).
        protocol: evaluation protocol for validation (training.protocols presets).
        select_metric: validation metric that picks best.safetensors (EZ-VSL keeps the highest
            validation cIoU, official_repos.md §2.1).
        encoder: image/audio trunk (`lite`, `resnet18`, ...); None = the method's own.
        image_weights: the image trunk's initial weights: "imagenet" (models.imagenet: torchvision's
            ResNet-18 file, downloaded once) or a local file; sets the method's `pretrained_image`.
        device: cpu | cuda | cuda:N; None = CUDA when available.
        resume: continue from OUT/resume.safetensors.
        gather_negatives: contrastive negatives from every rank (training.distributed).
        neighbours: neighbour index (`soundlens data neighbours`) that adds conceptual positives to
            every item (SSL-Align, paper 2 §3.2). None: <data folder>/neighbours.npz when the method
            is sslalign and that file exists.
        model: further method options (its config dataclass fields), e.g. {"tau": 0.05}.
        progress: tqdm bars on rank 0.
        tensorboard: also log to OUT/tensorboard when the tensorboard package is installed.
        debug_rank_hashes: test aid: every rank writes OUT/debug/rank<r>.json with a hash of its
            parameters and the ids it trained on.
        train: optimisation settings.
    """

    method: str = "ezvsl"
    data: str = "procedural:2000"
    out: str | None = None
    val: str | None = None
    val_pairs: int | None = None
    protocol: str = "ezvsl"
    select_metric: str = "cIoU"
    encoder: str | None = None
    image_weights: str | None = None
    device: str | None = None
    resume: bool = False
    gather_negatives: bool = False
    neighbours: str | None = None
    model: dict = field(default_factory=dict)
    progress: bool = True
    tensorboard: bool = True
    debug_rank_hashes: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.method

    def method_options(self) -> dict:
        """Options for models.create (None values dropped there)."""
        return {**self.model,
                "encoder": self.encoder if self.encoder is not None else self.model.get("encoder")}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"train"}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _check_keys(values: dict, where: str) -> None:
    unknown = sorted(set(values) - _RUN_FIELDS - _TRAIN_FIELDS)
    if unknown:
        raise SoundLensError(f"{where}: unknown option(s) {unknown}; known: "
                             f"{sorted(_RUN_FIELDS | _TRAIN_FIELDS)}")


def build_config(values: dict, config_file: str | Path | None = None) -> RunConfig:
    """A RunConfig from flat `values` (flags; None = unset) over an optional JSON file over the
    method's recipe over the defaults. Keys of both RunConfig and TrainConfig are accepted flat;
    the JSON file may also nest TrainConfig keys under "train"."""
    layered: dict = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SoundLensError(f"--config {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise SoundLensError(f"--config {path} is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise SoundLensError(f"--config {path} must hold a JSON object of options")
        data = dict(data)
        nested = data.pop("train", {})
        if not isinstance(nested, dict):
            raise SoundLensError(f"--config {path}: 'train' must be an object of TrainConfig options")
        _check_keys({**data, **nested}, f"--config {path}")
        layered.update(nested)
        layered.update(data)
    cli = {k: v for k, v in values.items() if v is not None}
    _check_keys(cli, "options")
    layered.update(cli)
    method = layered.get("method", RunConfig.method)
    method_entry(method)  # unknown method: a SoundLensError listing the registered ones
    train_values = {**recipe(method).train, **{k: v for k, v in layered.items() if k in _TRAIN_FIELDS}}
    run_values = {k: v for k, v in layered.items() if k in _RUN_FIELDS}
    if not isinstance(run_values.get("model", {}), dict):
        raise SoundLensError("'model' must be an object of method options, e.g. {\"tau\": 0.05}")
    config = RunConfig(**run_values, train=TrainConfig(**train_values))
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    t = config.train
    for name in ("epochs", "batch_size"):
        if getattr(t, name) < 1:
            raise SoundLensError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(t, name)}")
    if t.lr <= 0:
        raise SoundLensError(f"--lr must be > 0, got {t.lr}")
    if t.num_workers < 0:
        raise SoundLensError(f"--workers must be >= 0, got {t.num_workers}")
    if config.protocol not in protocols.available():
        raise SoundLensError(f"unknown protocol '{config.protocol}'; choose one of "
                             f"{', '.join(protocols.available())}")
    if config.select_metric not in ("cIoU", "AUC", "mean_cIoU", "hit_rate"):
        raise SoundLensError("select_metric must be cIoU, AUC, mean_cIoU or hit_rate, got "
                             f"'{config.select_metric}'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The trainer's flags (every default None: unset flags keep the config file / recipe values)."""
    parser.add_argument("--method", help=f"method to train: {', '.join(models.available())} (default ezvsl; "
                                         "'soundlens models' describes them)")
    parser.add_argument("--data", metavar="SPEC",
                        help="training data: procedural[:N][,seed=S,size=PX,objects=LO-HI] (default "
                             "procedural:2000) or a prepared folder DIR[,list=FILE] with frames/<id>.jpg "
                             "+ audio/<id>.wav")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON file of options (flat keys; 'model' holds method options)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/<method>)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the method's paper recipe, EZ-VSL 20)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int,
                        help="global batch over all processes (default 128, split across ranks)")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    parser.add_argument("--weight-decay", "--weight_decay", dest="weight_decay", type=float)
    parser.add_argument("--grad-clip", "--grad_clip", dest="grad_clip", type=float,
                        help="max grad norm (0 = off)")
    parser.add_argument("--optimizer", choices=("adam", "adamw"))
    parser.add_argument("--lr-schedule", "--lr_schedule", dest="lr_schedule", choices=("constant", "cosine"),
                        help="learning-rate schedule (default constant, as EZ-VSL and SLAVC train)")
    parser.add_argument("--encoder",
                        help="image/audio trunk: lite, resnet18, resnet18_lvs, efficientnet_lite0 "
                        "(default: the method's)")
    parser.add_argument("--image-weights", "--image_weights", dest="image_weights", metavar="imagenet|PATH",
                        help="initial image-trunk weights: 'imagenet' (torchvision's ResNet-18 "
                             "file, downloaded once into the SoundLens cache; efficientnet_lite0 has its "
                             "own) or a local file")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue the run in --out from resume.safetensors")
    parser.add_argument("--workers", dest="num_workers", type=int,
                        help="data-loading processes per rank (default 0)")
    parser.add_argument("--val", metavar="SPEC",
                        help="validation data with annotations (default: a held-out procedural split)")
    parser.add_argument("--val-pairs", "--val_pairs", dest="val_pairs", type=int,
                        help="size of the held-out procedural split")
    parser.add_argument("--protocol", help="validation protocol (default ezvsl)")
    parser.add_argument("--gather-negatives", "--gather_negatives", dest="gather_negatives",
                        action="store_true", default=None,
                        help="contrastive negatives from all processes (ezvsl, lvs)")
    parser.add_argument("--neighbours", metavar="INDEX",
                        help="neighbour index for SSL-Align's conceptual positives (default: <data folder>/"
                             "neighbours.npz when it exists; make one with 'soundlens data neighbours')")
    parser.add_argument("--seed", type=int, help="seed of the model's initialisation, the data order and the "
                        "augmentations (default 0)")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="torch deterministic algorithms: two runs with the same seed on "
                             "one machine give bit-identical weights (slower on GPU)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                        help="no bf16 autocast on CUDA")
    parser.add_argument("--log-every", "--log_every", dest="log_every", type=int,
                        help="steps between log records")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no tqdm bars")
    parser.add_argument("--debug-rank-hashes", dest="debug_rank_hashes", action="store_true", default=None,
                        help=argparse.SUPPRESS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m soundlens.training.main",
                                     description="Train a sound-source localisation method (CPU, "
                                                 "GPU, torchrun).")
    add_arguments(parser)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = {k: v for k, v in vars(args).items()
              if k not in ("config", "command", "func") and not k.startswith("_")}
    return build_config(values, getattr(args, "config", None))
