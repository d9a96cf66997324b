"""`soundlens bench speed`: forward time per method and stage, against a plain eager reference in the same
run.

Each (method, batch) builds one model with the paper's layout (random weights, seeded, BatchNorm
statistics from one pass over random inputs as a trained model has them: `calibrate_batchnorm`) and times its
forms on the same inputs (640x480 uint8 frames and the preset's audio), repetitions interleaved so a load
change hits every form alike:

    reference     the unoptimised path: eager, BatchNorm as separate layers, `torch.no_grad` (not
                  inference mode), the front-end building its windows on every call
    eager         `models.inference.optimize_for_inference`: BatchNorm folded, cached front-end,
                  `torch.inference_mode` (what `live`, `analyze` and `localize` run)
    onnxruntime   the checked ONNX graph on ONNX Runtime's CPU execution provider

Stages (a separate pass, forward hooks on the trunks, so the totals are timed without hooks):
front-end = frames + waveforms -> model inputs (image resize/normalise and spectrogram), image trunk
(with SIRA's flow trunk and SLAVC's momentum copy when the map uses them), audio trunk, head = the
rest of `heatmap`. Peak memory: the process's peak RSS so far on CPU (it only grows: read the first
row of a run for the smallest), CUDA's max allocated per form on a GPU. Agreement: max |minmax(map) -
minmax(reference map)|; the reference is the eager float32 model.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from soundlens import models
from soundlens.models.devices import describe_device, pick_device
from soundlens.models.errors import SoundLensError
from soundlens.models.frontends import AudioFrontend
from soundlens.models.inference import BACKENDS, MAP_TOLERANCE, for_inference, map_difference

METHODS = ("ezvsl", "lvs", "slavc", "sslalign", "jsa", "sira")
FRAME_HW = (480, 640)


@dataclass
class SpeedConfig:
    methods: tuple[str, ...] = METHODS
    batches: tuple[int, ...] = (1, 16)
    threads: int | None = None  # torch CPU threads (None: torch's default, the machine's cores)
    device: str = "cpu"
    backends: tuple[str, ...] = ("eager",)
    reference: bool = True
    repeats: int = 5
    warmup: int = 1
    stages: bool = True
    seed: int = 0
    options: dict = field(default_factory=dict)  # models.create options for every method (e.g. encoder)
    command: str = ""


def _inputs(model, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (batch, *FRAME_HW, 3), dtype=np.uint8)
    rate = model.audio_preset.sample_rate
    wav = (0.3 * rng.standard_normal(
        (batch, int(round(model.audio_preset.input_seconds * rate))))).astype(np.float32)
    return frames, wav, rate


def calibrate_batchnorm(model, batch: int = 4, seed: int = 1):
    """Set every BatchNorm's running statistics from one pass over random inputs, as training leaves
    them, then eval mode. With the init's (0, 1) statistics a random deep trunk's activations grow
    layer by layer and float32 rounding alone moves a random SIRA's min-max map by 3.6e-4 (batch 2 vs
    two batches of 1, same eager model): the 1e-4 criterion would measure that, not the forms."""
    frames, wav, rate = _inputs(model, batch, seed)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the batch's statistics
    with torch.no_grad():
        model.localize(frames, wav, rate)
    return model.eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Form:
    """One way of computing the maps, timed as a whole (`run`) and by stage (`stages`)."""

    def __init__(self, name: str, model, grad_mode, device: torch.device):
        self.name, self.model, self.grad_mode, self.device = name, model, grad_mode, device
        self.times: list[float] = []
        self.maps = None

    def run(self, frames, wav, rate):
        with self.grad_mode():
            return self.model.localize(frames, wav, rate)

    def timed(self, frames, wav, rate) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        maps = self.run(frames, wav, rate)
        _sync(self.device)
        self.maps = maps
        return time.perf_counter() - t0

    def stages(self, frames, wav, rate, repeats: int) -> dict:
        """Median ms of front-end, image trunk, audio trunk and head over `repeats` passes."""
        torch_model = getattr(self.model, "model", self.model) if self.name == "onnxruntime" else self.model
        rows = []
        for _ in range(repeats):
            _sync(self.device)
            t0 = time.perf_counter()
            with self.grad_mode():
                images, specs = torch_model.prepare(frames, wav, rate)
                _sync(self.device)
                t1 = time.perf_counter()
                if self.name == "onnxruntime":  # one graph: no trunk boundaries to time
                    self.model.heatmap(images, specs)
                    trunks = {"image": None, "audio": None}
                else:
                    with _trunk_timer(torch_model, self.device) as trunks:
                        torch_model.heatmap(images, specs)
                _sync(self.device)
                t2 = time.perf_counter()
            rows.append((t1 - t0, trunks.get("image"), trunks.get("audio"), t2 - t1))
        out = {"front_end": _ms(statistics.median(r[0] for r in rows))}
        if rows[0][1] is None:
            out.update(image_trunk=None, audio_trunk=None, head=None,
                       graph=_ms(statistics.median(r[3] for r in rows)))
        else:
            out["image_trunk"] = _ms(statistics.median(r[1] for r in rows))
            out["audio_trunk"] = _ms(statistics.median(r[2] for r in rows))
            out["head"] = _ms(statistics.median(r[3] - r[1] - r[2] for r in rows))
        return out


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 2)


def _trunk_kind(name: str) -> str | None:
    if "audnet" in name:
        return "audio"
    if "imgnet" in name or "flownet" in name:
        return "image"
    return None


@contextlib.contextmanager
def _trunk_timer(model, device: torch.device):
    """Seconds spent in the image and audio trunks (top-level children named *imgnet*, *flownet*,
    *audnet*) during the block, summed over calls, via forward hooks removed afterwards."""
    spent = {"image": 0.0, "audio": 0.0}
    handles = []
    for name, child in model.named_children():
        kind = _trunk_kind(name)
        if kind is None:
            continue
        start = {}

        def pre(_m, _x, start=start):
            _sync(device)
            start["t"] = time.perf_counter()

        def post(_m, _x, _y, start=start, kind=kind):
            _sync(device)
            spent[kind] += time.perf_counter() - start["t"]

        handles += [child.register_forward_pre_hook(pre), child.register_forward_hook(post)]
    try:
        yield spent
    finally:
        for h in handles:
            h.remove()


def _reference(model) -> object:
    """The unoptimised path on the same weights: the model as built, its front-end building windows
    per call. A shallow copy shares the weights; only the front-end attribute differs."""
    ref = copy.copy(model)
    ref.__dict__ = dict(model.__dict__)
    ref.frontend = AudioFrontend(model.audio_preset, cache=False)
    return ref


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _forms(model, config: SpeedConfig, device: torch.device) -> tuple[list[_Form], dict[str, str]]:
    """The forms to time, and {backend: why not} for those this model has none of (JSA's adaptive
    pooling does not export to ONNX, SIRA's flow input is not in the graph)."""
    forms, missing = [], {}
    if config.reference:
        forms.append(_Form("reference", _reference(model), torch.no_grad, device))
    for backend in config.backends:
        try:
            fast = for_inference(model, backend, device=device, threads=config.threads, fallback=False)
        except SoundLensError as err:
            missing[backend] = str(err)
            continue
        forms.append(_Form(backend, fast, torch.inference_mode, device))
    return forms, missing


def bench_method(method: str, batch: int, config: SpeedConfig, on_row=None) -> list[dict]:
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = calibrate_batchnorm(models.create(method, **config.options).to(device))
    frames, wav, rate = _inputs(model, batch, config.seed)
    forms, missing = _forms(model, config, device)
    with torch.no_grad():  # the answer every form is held to: the eager float32 model as built
        truth = model.localize(frames, wav, rate)
    for form in forms:
        for _ in range(config.warmup):
            form.timed(frames, wav, rate)
    for r in range(config.repeats):  # interleaved, order rotated: a load change hits every form alike
        for i in range(len(forms)):
            form = forms[(i + r) % len(forms)]
            form.times.append(form.timed(frames, wav, rate))
    rows = []
    ref_ms = None
    for form in forms:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        median = statistics.median(form.times)
        stages = form.stages(frames, wav, rate, config.repeats) if config.stages else {}
        row = {
            "method": method, "batch": batch, "form": form.name,
            "total_ms": {"median": _ms(median), "min": _ms(min(form.times)),
                         "runs": [_ms(t) for t in form.times]},
            "stages_ms": stages,
            "clips_per_s": round(batch / median, 2),
            "peak_memory_mb": _memory_mb(device),
            "max_map_diff": map_difference(form.maps, truth),
            "map_shape": list(truth.shape[1:]),
            "inference_form": getattr(form.model, "inference_form", "eager, as built"),
        }
        if form.name == "reference":
            ref_ms = median
        row["speedup_vs_reference"] = round(ref_ms / median, 3) if ref_ms else None
        row["equal_to_1e-4"] = row["max_map_diff"] <= MAP_TOLERANCE
        rows.append(row)
        if on_row is not None:
            on_row(row)
    for backend, why in missing.items():
        row = {"method": method, "batch": batch, "form": backend, "unavailable": why}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def host_info(device: torch.device) -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "device": describe_device(device), "load_average": [round(x, 2) for x in os.getloadavg()]}


def bench_speed(config: SpeedConfig, on_row=None) -> dict:
    """Every (method, batch) of `config`; JSON-ready report (`markdown(report)` renders it)."""
    for backend in config.backends:
        if backend not in BACKENDS:
            raise SoundLensError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    if not config.backends and not config.reference:
        raise SoundLensError("nothing to time: give --backend or --reference")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    host = host_info(device)
    rows = []
    for method in config.methods:
        for batch in config.batches:
            rows += bench_method(method, batch, config, on_row)
    host["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"command": config.command, "started": started, "host": host, "repeats": config.repeats,
            "frame_hw": list(FRAME_HW), "tolerance": MAP_TOLERANCE, "results": rows}


def markdown(report: dict) -> str:
    """The report as a markdown table (docs/benchmarks.md#speed)."""
    head = ("| method | batch | form | total ms (median) | front-end | image trunk | audio trunk | head | "
            "clips/s | peak MB | max map diff | x reference |")
    lines = [head, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(v):
        return "–" if v is None else f"{v:g}"

    for r in report["results"]:
        if "unavailable" in r:
            lines.append(f"| {r['method']} | {r['batch']} | {r['form']} | unavailable: "
                         f"{r['unavailable'][:90]} |"
                         + " |" * 8)
            continue
        s = r["stages_ms"]
        head_ms = s.get("head") if s.get("head") is not None else s.get("graph")
        lines.append(f"| {r['method']} | {r['batch']} | {r['form']} | {r['total_ms']['median']:g} | "
                     f"{cell(s.get('front_end'))} | {cell(s.get('image_trunk'))} | "
                     f"{cell(s.get('audio_trunk'))} | {cell(head_ms)} | {r['clips_per_s']:g} | "
                     f"{r['peak_memory_mb']:g} | {r['max_map_diff']:.1e} | "
                     f"{cell(r['speedup_vs_reference'])} |")
    h = report["host"]
    lines.append("")
    lines.append(f"{h['cpu']}, {h['cores']} cores, torch {h['torch']}, {h['torch_threads']} threads, "
                 f"{h['device']}; load average {h['load_average'][0]} at start, "
                 f"{h.get('load_average_end', ['?'])[0]} at end; {report['started']}; median of "
                 f"{report['repeats']}, forms interleaved. ONNX head = the whole graph.")
    return "\n".join(lines)
