"""Trainer options: typed configs with the papers' defaults, a JSON config file, and the CLI flags.

Layering (lowest first): `TrainConfig` defaults (EZ-VSL's recipe) -> the method's recipe
(`RECIPES`) -> `--config FILE` (JSON) -> command-line flags. Flags default to None and are dropped
when unset (style.md §1 timm `create_model`, §4 torchrun `config_from_args`), so an unset flag never
overrides a lower layer. The same parser serves `soundlens train` and `torchrun -m training.main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tools.errors import SoundLensError
from training.engine import TrainConfig

# Official training recipes (optimiser settings only; anything not named keeps TrainConfig's
# EZ-VSL defaults). LVS and SSL-Align released no training code (official_repos.md §2.3, §2.4),
# so they train with the EZ-VSL recipe they were compared under.
RECIPES: dict[str, dict] = {
    "ezvsl": {},  # §2.1: Adam 1e-4, wd 0, batch 128, 20 epochs (144k / full sets)
    "slavc": {},  # §2.2: same as EZ-VSL
    "lvs": {},  # §2.3: no training code
    "sslalign": {},  # §2.4: no training code
    "jsa": {"optimizer": "adamw", "lr": 5e-5, "weight_decay": 0.01, "batch_size": 256, "epochs": 50},  # §2.8 (144k)
    "sira": {"epochs": 100},  # §2.7 train.sh: lr 1e-4, batch 128, 100 epochs
}

# Method options for short runs on procedural still pairs (the learning tests, `soundlens bench
# accuracy`): a few hundred optimizer steps on 112 px scenes with 1-3 objects, one of them sounding,
# instead of the papers' tens of thousands of steps on VGGSound videos. Each entry names why; the
# measured hit rates are on the learning test's held-out 2-3-object scenes (a random visible object:
# ~0.42). `soundlens train` never applies them (give them as `model` options in --config);
# `soundlens bench accuracy` does unless --paper-options.
SHORT_RUN_OPTIONS: dict[str, dict] = {
    # §2.1's heads start tiny (Linear std 0.01) next to Adam's first steps at 1e-3 (~lr per weight,
    # all in a shared direction): every clip's audio embedding turns to one vector within ~5 steps
    # (cosine 0.92 -> 0.995) and the run either escapes late (hit rate 0.22-0.53 after 3 epochs) or
    # never (loss pinned at 2 ln B). PyTorch's default init starts learning in the first epoch.
    "ezvsl": {"head_init": "torch"},
    # EMA momentum 0.999 averages over ~1000 steps; in a 190-step run the targets stay at their random
    # initialisation (hit rate 0.49). 0.9 averages over ~10 steps, the same ~5 % of the run that the
    # paper's ~1000 steps are of its ~22k (§2.2). Measured: 0.74.
    "slavc": {"momentum_img": 0.9, "momentum_aud": 0.9},
    # Eq. 1 with M = 1 averages the cosine over the whole image: the background is shared by every
    # class, so nothing ties it to the audio and the peak lands on it (hit rate 0.22). Eq. 1's optional
    # pseudo-mask (ref. [2], LVS' positive region) keeps s_L on the responding region. Measured: 0.80.
    "sslalign": {"loc_mask": "trimap"},
    # Still pairs carry no motion: with zero flow the flow attention is uniform and only adds the
    # image's mean value vector to every position, a shortcut that lowers the trimap loss without
    # localising (hit rate 0.41). Without the flow branch: 0.63.
    "sira": {"flow": False},
    # Untrained, every clip's audio embedding is nearly the same vector (cosine ~0.997), so the trimap's
    # hard negative, whose gradient needs no audio difference, decides alone where the map goes: it
    # sinks whatever starts low, the objects here, and the map lands on the background (hit rate 0.00
    # natively on an AVX-512 CPU, 0.85 elsewhere). The first 60 steps (one epoch) train with the easy
    # negatives only, which tie the map to the audio; then the paper's full loss. Measured: 0.98.
    "lvs": {"hard_negative_warmup": 60},
    # The false-negative top-k is a fraction of the batch: 20 of the paper's 256; 3 of our 32.
    "jsa": {"reciprocal_k": 3},
}
# Learning rates that differ from the short runs' Adam 1e-3. JSA's slots collapse to one vector for
# every clip within ~10 steps at 1e-3 or 1e-4 (InfoNCE stuck at ln B); at the paper's 5e-5 (§2.8)
# they do not.
SHORT_RUN_LR: dict[str, float] = {"jsa": 5e-5}


# Learning-rate schedules that differ from the short runs' constant rate. EZ-VSL's pointing accuracy
# swings from epoch to epoch at a constant 1e-3 (0.44, 0.28, 0.71, 0.53, 0.75 in one 5-epoch run:
# the peak hops between parts of the object); a cosine decay to 0 lets the last epoch settle.
SHORT_RUN_SCHEDULE: dict[str, str] = {"ezvsl": "cosine"}


def short_run_lr(method: str) -> float:
    """Adam learning rate of `method` in a short run: 1e-3 unless SHORT_RUN_LR names another."""
    return SHORT_RUN_LR.get(method, 1e-3)


def short_run_schedule(method: str) -> str:
    """Learning-rate schedule of `method` in a short run: constant unless SHORT_RUN_SCHEDULE names another."""
    return SHORT_RUN_SCHEDULE.get(method, "constant")


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
        return {**self.model, "encoder": self.encoder if self.encoder is not None else self.model.get("encoder")}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"train"}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _check_keys(values: dict, where: str) -> None:
    unknown = sorted(set(values) - _RUN_FIELDS - _TRAIN_FIELDS)
    if unknown:
        raise SoundLensError(f"{where}: unknown option(s) {unknown}; known: {sorted(_RUN_FIELDS | _TRAIN_FIELDS)}")


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
    from models.registry import method_entry

    method_entry(method)  # unknown method: a SoundLensError listing the registered ones
    train_values = {**RECIPES.get(method, {}), **{k: v for k, v in layered.items() if k in _TRAIN_FIELDS}}
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
    from training import protocols

    if config.protocol not in protocols.available():
        raise SoundLensError(f"unknown protocol '{config.protocol}'; choose one of {', '.join(protocols.available())}")
    if config.select_metric not in ("cIoU", "AUC", "mean_cIoU", "hit_rate"):
        raise SoundLensError(f"select_metric must be cIoU, AUC, mean_cIoU or hit_rate, got '{config.select_metric}'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The trainer's flags (every default None: unset flags keep the config file / recipe values)."""
    parser.add_argument("--method", help="method to train (see 'soundlens models'); default ezvsl")
    parser.add_argument("--data", metavar="SPEC",
                        help="training data: procedural[:N][,seed=S,size=PX,objects=LO-HI] (default procedural:2000) "
                             "or a prepared folder DIR[,list=FILE] with frames/<id>.jpg + audio/<id>.wav")
    parser.add_argument("--config", metavar="FILE", help="JSON file of options (flat keys; 'model' holds method options)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/<method>)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the method's paper recipe, EZ-VSL 20)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int,
                        help="global batch over all processes (default 128, split across ranks)")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    parser.add_argument("--weight-decay", "--weight_decay", dest="weight_decay", type=float)
    parser.add_argument("--grad-clip", "--grad_clip", dest="grad_clip", type=float, help="max grad norm (0 = off)")
    parser.add_argument("--optimizer", choices=("adam", "adamw"))
    parser.add_argument("--lr-schedule", "--lr_schedule", dest="lr_schedule", choices=("constant", "cosine"),
                        help="learning-rate schedule (default constant, as EZ-VSL and SLAVC train)")
    parser.add_argument("--encoder", help="image/audio trunk: lite, resnet18, resnet18_lvs (default: the method's)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue the run in --out from resume.safetensors")
    parser.add_argument("--workers", dest="num_workers", type=int, help="data-loading processes per rank (default 0)")
    parser.add_argument("--val", metavar="SPEC",
                        help="validation data with annotations (default: a held-out procedural split)")
    parser.add_argument("--val-pairs", "--val_pairs", dest="val_pairs", type=int,
                        help="size of the held-out procedural split")
    parser.add_argument("--protocol", help="validation protocol (default ezvsl)")
    parser.add_argument("--gather-negatives", "--gather_negatives", dest="gather_negatives", action="store_true",
                        default=None, help="contrastive negatives from all processes (ezvsl, lvs)")
    parser.add_argument("--neighbours", metavar="INDEX",
                        help="neighbour index for SSL-Align's conceptual positives (default: <data folder>/"
                             "neighbours.npz when it exists; make one with 'soundlens data neighbours')")
    parser.add_argument("--seed", type=int, help="seed of the model's initialisation, the data order and the "
                        "augmentations (default 0)")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="torch deterministic algorithms: two runs with the same seed on one machine give "
                             "bit-identical weights (slower on GPU)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no bf16 autocast on CUDA")
    parser.add_argument("--log-every", "--log_every", dest="log_every", type=int, help="steps between log records")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no tqdm bars")
    parser.add_argument("--debug-rank-hashes", dest="debug_rank_hashes", action="store_true", default=None,
                        help=argparse.SUPPRESS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.main",
                                     description="Train a sound-source localisation method (CPU, GPU, torchrun).")
    add_arguments(parser)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = {k: v for k, v in vars(args).items()
              if k not in ("config", "command", "func") and not k.startswith("_")}
    return build_config(values, getattr(args, "config", None))
