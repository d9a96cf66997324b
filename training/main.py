"""The trainer: `soundlens train ...` and `torchrun --nproc_per_node N -m soundlens.training.main ...` share
`main(argv)`.

Wiring as open_clip's `main.py` (style.md §2): parse -> typed config -> join the torchrun job ->
same seed on every rank to build the model, seed + rank after -> data with a DistributedSampler ->
DDP -> per epoch: train, rank 0 validates and writes, barrier. Outputs in OUT:

    latest.safetensors   the model after the last finished epoch (models.save, atomic)
    best.safetensors     the model with the best validation score (cIoU by default)
    resume.safetensors   model + optimizer tensors and epoch/history as JSON metadata (no pickle)
    log.jsonl            one JSON record per logged step and per epoch
    config.json          the resolved run configuration
    tensorboard/         when the tensorboard package is installed
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from soundlens import models
from soundlens.models.checkpoint import read_header
from soundlens.models.errors import EXIT_USER_ERROR, SoundLensError
from soundlens.models.imagenet import image_weights_path
from soundlens.models.jsonable import jsonable
from soundlens.models.registry import make_config
from soundlens.training.data import eval_data, parse_spec, spec_summary, train_data
from soundlens.training.distributed import (
    DistEnv,
    barrier,
    check_gatherable,
    cleanup,
    init_distributed,
    make_gather,
)
from soundlens.training.engine import Objective, evaluate, make_optimizer, train_one_epoch, unwrap
from soundlens.training.neighbours import INDEX_NAME
from soundlens.training.params import RunConfig, config_from_args, parse_args
from soundlens.training.reproducibility import numerics, set_deterministic

STATE_FORMAT = "soundlens.train_state"
STATE_VERSION = "1"
# Validation metrics kept in the epoch records (fractions in [0, 1]).
VAL_KEYS = ("cIoU", "AUC", "mean_cIoU", "hit_rate")


# --- logging ---------------------------------------------------------------------------------
class RunLogger:
    """log.jsonl (+ TensorBoard when installed) on rank 0; a no-op elsewhere."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self._file = None
        self._tb = None
        self.tensorboard_note = None
        if not enabled:
            return
        self._file = (out / "log.jsonl").open("a", encoding="utf-8")
        if tensorboard:
            try:
                # optional: torch's writer needs the tensorboard package
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.tensorboard_note = "tensorboard is not installed; logging to log.jsonl only"

    def write(self, event: str, record: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(jsonable({"event": event, "time": time.time(), **record})) + "\n")
        self._file.flush()

    def step(self, record: dict) -> None:
        self.write("step", record)
        if self._tb is not None:
            for k, v in record.items():
                if k not in ("epoch", "step", "global_step", "last") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"train/{k}", v, record["global_step"])

    def epoch(self, record: dict) -> None:
        self.write("epoch", record)
        if self._tb is not None:
            for group in ("train", "val"):
                for k, v in (record.get(group) or {}).items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self._tb.add_scalar(f"epoch_{group}/{k}", v, record["epoch"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


# --- resume state: tensors in safetensors, everything else as JSON metadata --------------------
def save_state(path: Path, model, optimizer, info: dict) -> None:
    """Model + optimizer state for --resume, written atomically; never pickled (safetensors)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sd = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    meta = {"format": STATE_FORMAT, "format_version": STATE_VERSION,
            "optimizer": json.dumps(jsonable({"param_groups": sd["param_groups"], "scalars": scalars})),
            "info": json.dumps(jsonable(info))}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_state(path: Path, model, optimizer) -> dict:
    """Restore what `save_state` wrote into `model` and `optimizer`; returns the info dict."""
    _, meta = read_header(path)
    if meta.get("format") != STATE_FORMAT:
        raise SoundLensError(f"{path} is not a SoundLens training state; remove it or choose another --out")
    if meta.get("format_version") != STATE_VERSION:
        raise SoundLensError(f"{path} uses training-state format {meta.get('format_version')}; "
                             f"this SoundLens reads {STATE_VERSION}: start a new run (new --out)")
    info = json.loads(meta["info"])
    opt_meta = json.loads(meta["optimizer"])
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    tensors = load_file(str(path))
    model_state = {k[len("model."):]: tensors[k] for k in keys if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(model_state, strict=False)
    if missing or unexpected:
        raise SoundLensError(f"{path} does not match the model being trained (missing "
                             f"{missing[:3]}, unexpected {unexpected[:3]}); resume with the same method "
                             "options or choose a new --out")
    state: dict[int, dict] = {}
    for k in keys:
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = tensors[k]
    for idx, values in opt_meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = opt_meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return info


def param_digest(model) -> str:
    """sha256 over the parameters (name-sorted, float32 bytes): equal across DDP ranks. Buffers
    (BatchNorm statistics) are left out: each rank updates them from its own shard."""
    h = hashlib.sha256()
    for name, p in sorted(unwrap(model).named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- the run ---------------------------------------------------------------------------------
def _say(env: DistEnv, text: str) -> None:
    if env.is_master:
        print(text, flush=True)


def _check_resume(config: RunConfig, out: Path) -> bool:
    """Whether to resume; refuse to overwrite an existing run without --resume."""
    state = out / "resume.safetensors"
    if state.is_file() and not config.resume:
        raise SoundLensError(f"{out} already holds a training run; pass --resume to continue it or "
                             "choose a new --out")
    return config.resume and state.is_file()


def _neighbour_index(config: RunConfig, spec, model) -> Path | None:
    """The neighbour index to train with: --neighbours, else, for a method that trains with
    conceptual positives (`uses_neighbours`: SSL-Align), the one next to a folder dataset (the
    place `soundlens data neighbours` writes it)."""
    if config.neighbours:
        path = Path(config.neighbours)
        if not path.is_file():
            raise SoundLensError(f"--neighbours {path} does not exist; make it with 'soundlens "
                                 "data neighbours'")
        return path
    if model.uses_neighbours and spec.kind != "procedural":
        path = Path(spec.root) / INDEX_NAME
        return path if path.is_file() else None
    return None


def _same_config(stored: dict, current: dict, out: Path) -> None:
    diff = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if diff:
        raise SoundLensError(f"--resume: the run in {out} was trained with other method options "
                             f"({', '.join(diff)}: {[stored.get(k) for k in diff]} there, "
                             f"{[current.get(k) for k in diff]} now); use the same options or a new --out")


def _val_data(config: RunConfig, train_spec):
    """The validation set; every rank builds it (cheap: datasets are lazy) so a bad --val fails on
    all ranks alike instead of leaving the others waiting at a barrier. Annotated clips whose
    files are missing are left out (a partly downloaded test set still validates)."""
    if config.val:
        return eval_data(parse_spec(config.val), allow_missing=True)
    if train_spec.kind == "procedural":
        return eval_data(train_spec.heldout(config.val_pairs))
    return None


def _method_options(config: RunConfig) -> dict:
    """models.create's options, with --image-weights (or the config file's `pretrained_image`, which
    takes the same values) resolved to a local file: "imagenet" downloads torchvision's once."""
    options = config.method_options()
    spec = config.image_weights if config.image_weights is not None else options.get("pretrained_image")
    if spec is not None:
        encoder = make_config(config.method, **options).encoder
        options["pretrained_image"] = image_weights_path(spec, encoder, quiet=not config.progress)
    return options


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    # Reseeded every epoch from (seed, epoch, rank) so a resumed run draws the same augmentations
    # as an uninterrupted one, and ranks differ (seed + rank, style.md §2).
    return (seed * 1_000_003 + epoch * 1009 + rank) % (2**63)


def train(config: RunConfig) -> dict:
    """Run one training job in this process (one rank of it under torchrun); returns a summary."""
    env = init_distributed(config.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    set_deterministic(config.train.deterministic)
    try:
        return _train(config, env)
    finally:
        set_deterministic(was_deterministic)  # a library call leaves the process as it found it
        cleanup(env)


def _train(config: RunConfig, env: DistEnv) -> dict:
    t = config.train
    out = config.out_dir
    resuming = _check_resume(config, out)
    barrier(env)  # every rank has checked the run directory before rank 0 writes into it
    if env.is_master:
        out.mkdir(parents=True, exist_ok=True)
    spec = parse_spec(config.data)

    torch.manual_seed(t.seed)  # same seed on every rank for the model build (style.md §2)
    model = models.create(config.method, **_method_options(config)).to(env.device)
    if config.gather_negatives:
        check_gatherable(model)
    objective = Objective(model, make_gather(env) if config.gather_negatives else None)
    optimizer = make_optimizer(model, t)
    info = _resume_info(config, env, out, resuming, model, optimizer)

    neighbours = _neighbour_index(config, spec, model)
    if neighbours is not None:
        _say(env, f"conceptual positives from {neighbours}")
    data = train_data(spec, t.batch_size, env.rank, env.world_size, t.num_workers, t.seed, neighbours)
    val = _val_data(config, spec)
    if env.distributed:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        ddp = torch.nn.parallel.DistributedDataParallel(objective, device_ids=device_ids)
    else:
        ddp = objective

    logger = RunLogger(out, env.is_master, config.tensorboard)
    _announce(config, env, spec, model, info if resuming else None, data, val, logger)
    start_time = time.perf_counter()
    history, best, global_step = _epochs(config, env, spec, model, optimizer, ddp, data, val, logger, info)
    barrier(env)
    logger.close()
    return {"out": str(out), "history": history, "best": best, "world_size": env.world_size,
            "latest": str(out / "latest.safetensors"),
            "best_path": str(out / "best.safetensors") if best else None,
            "train_time_s": time.perf_counter() - start_time}


def _resume_info(config: RunConfig, env: DistEnv, out: Path, resuming: bool, model, optimizer) -> dict:
    """The run's state so far: epoch, best, history and step count from resume.safetensors, or a new run's."""
    if not resuming:
        if config.resume:
            _say(env, f"nothing to resume in {out}; starting a new run")
        return {"epoch": -1, "best": None, "history": [], "global_step": 0}
    info = load_state(out / "resume.safetensors", model, optimizer)
    _same_config(info.get("model_config", {}), models.describe(model)["config"], out)
    _say(env, f"resuming {out} after epoch {info['epoch']}")
    return info


def _announce(config: RunConfig, env: DistEnv, spec, model, resumed: dict | None, data, val, logger) -> None:
    """config.json, the log's start record and the console lines that say what this run is."""
    t, out = config.train, config.out_dir
    run_numerics = numerics(t.seed)
    if env.is_master:
        resolved = {**config.to_dict(), "model_config": models.describe(model)["config"],
                    "world_size": env.world_size, "device": str(env.device),
                    "data_summary": spec_summary(spec), "numerics": run_numerics}
        (out / "config.json").write_text(json.dumps(jsonable(resolved), indent=2) + "\n")
        logger.write("start", {"config": resolved, "resumed_after": resumed["epoch"] if resumed else None})
        notes = [logger.tensorboard_note,
                 "--gather-negatives with one process: the negatives are the local batch"
                 if config.gather_negatives and not env.distributed else None,
                 f"{len(val.missing)} annotated validation clips have no files and are left out"
                 if val is not None and val.missing else None,
                 "no validation data (--val SPEC with annotations); best.safetensors is not written"
                 if val is None else None]
        for note in filter(None, notes):
            print(f"note: {note}", flush=True)
    _say(env, f"training {config.method} on {spec.text}: {len(data.dataset)} clips, "
              f"{len(data.loader)} steps/epoch, batch {t.batch_size} over {env.world_size} process(es) on "
              f"{env.device}; writing {out}")
    _say(env, f"seed {t.seed}, torch {run_numerics['torch']}, CPU capability "
              f"{run_numerics['cpu_capability']}, {run_numerics['threads']} thread(s)"
              + (", deterministic" if t.deterministic else ""))


def _epochs(config: RunConfig, env: DistEnv, spec, model, optimizer, ddp, data, val, logger, info: dict):
    """The remaining epochs: train, then (rank 0) validate, save and log each. -> (history, best,
    global_step)."""
    t, out = config.train, config.out_dir
    current = models.describe(model)["config"]
    history: list[dict] = list(info["history"])
    best = info["best"]
    global_step = int(info["global_step"])
    debug_ids: dict[int, list[int]] = {}
    debug_loss: dict[int, float] = {}
    for epoch in range(int(info["epoch"]) + 1, t.epochs):
        torch.manual_seed(_epoch_seed(t.seed, epoch, env.rank))
        data.set_epoch(epoch)
        if config.debug_rank_hashes:
            debug_ids[epoch] = list(iter(data.sampler))
        t0 = time.perf_counter()
        summary = train_one_epoch(ddp, data.loader, optimizer, t, log=logger.step if env.is_master else None,
                                  epoch=epoch, progress=env.is_master and config.progress,
                                  step_offset=global_step)
        global_step += int(summary["steps"])
        debug_loss[epoch] = summary.get("loss")
        record = {"epoch": epoch, "train": summary, "train_time_s": time.perf_counter() - t0}
        if env.is_master:
            record["val"], improved = _validate_and_save(config, model, val, epoch, best, global_step, spec,
                                                         out)
            if improved:
                value = record["val"][config.select_metric]
                best = {"epoch": epoch, "metric": config.select_metric,
                        "value": value if value is not None and math.isfinite(value) else None}
            record["best"] = best
            history.append(jsonable(record))
            _save_resume(out, model, optimizer, epoch, best, history, global_step, current)
            logger.epoch(record)
            print(_epoch_line(record, improved), flush=True)
        barrier(env)  # nobody starts the next epoch (or exits) while rank 0 validates and writes
    if config.debug_rank_hashes:
        _write_rank_debug(out, env, model, debug_ids, debug_loss, global_step)
    return history, best, global_step


def _write_rank_debug(out: Path, env: DistEnv, model, ids: dict, losses: dict, global_step: int) -> None:
    """Per-rank sample order, mean losses and a weight digest (the DDP test compares ranks with them)."""
    debug = out / "debug"
    debug.mkdir(parents=True, exist_ok=True)
    (debug / f"rank{env.rank}.json").write_text(json.dumps({
        "rank": env.rank, "world_size": env.world_size, "param_sha256": param_digest(model),
        "indices": {str(k): v for k, v in ids.items()}, "mean_loss": {str(k): v for k, v in losses.items()},
        "global_step": global_step}))


def _validate_and_save(config, model, val, epoch, best, global_step, spec, out):
    """Rank 0: validate, write latest (always) and best (when improved). Returns (val metrics, improved)."""
    metrics = None
    if val is not None:
        report = evaluate(model, val, protocol=config.protocol, batch_size=32, retrieval=True,
                          allow_missing=True)
        metrics = {k: report[k] for k in VAL_KEYS}
        metrics["n"] = report["n"]
        metrics["spec"] = val.spec.text
        metrics["protocol"] = config.protocol
        if report.get("retrieval"):
            metrics.update({k: v for k, v in report["retrieval"].items() if k.startswith(("a2i", "i2a"))})
    trained_on = {"data": spec_summary(spec), "epochs_done": epoch + 1, "global_step": global_step,
                  "method": config.method, "val": metrics, "train": config.train.__dict__,
                  "numerics": numerics(config.train.seed)}
    models.save(model, out / "latest.safetensors", trained_on=jsonable(trained_on))
    improved = False
    if metrics is not None:
        value = metrics[config.select_metric]
        value = -math.inf if value is None or not math.isfinite(value) else value
        previous = -math.inf if best is None or best.get("value") is None else best["value"]
        improved = best is None or value >= previous  # a tie goes to the later epoch (trained longer)
        if improved:
            models.save(model, out / "best.safetensors",
                        trained_on=jsonable({**trained_on, "best_epoch": epoch}))
    return metrics, improved


def _save_resume(out, model, optimizer, epoch, best, history, global_step, model_config) -> None:
    save_state(out / "resume.safetensors", model, optimizer,
               {"epoch": epoch, "best": best, "history": history, "global_step": global_step,
                "model_config": model_config})


def _epoch_line(record: dict, improved: bool) -> str:
    tr = record["train"]
    line = (f"epoch {record['epoch']}: loss {tr.get('loss', float('nan')):.4f} | {tr['samples_per_s']:.1f} "
            f"samples/s | {record['train_time_s']:.1f} s")
    v = record.get("val")
    if v:
        def pct(x):
            return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"

        line += (f" | val cIoU {pct(v['cIoU'])} AUC {pct(v['AUC'])} hit {pct(v['hit_rate'])}"
                 + (" (best)" if improved else ""))
    return line


def run(config: RunConfig) -> int:
    """Train and print where the checkpoints are (the `soundlens train` command body)."""
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        best = f", best {result['best_path']}" if result["best_path"] else ""
        print(f"done: latest {result['latest']}{best}; log {Path(result['out']) / 'log.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m soundlens.training.main` / `torchrun ... -m soundlens.training.main` / `soundlens train`
    (same flags)."""
    try:
        return run(config_from_args(parse_args(argv)))
    except SoundLensError as err:
        print(f"soundlens.training.main: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
