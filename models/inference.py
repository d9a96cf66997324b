"""Inference-time forms of a model: BatchNorm folded, a cached front-end, and an ONNX Runtime backend.

    fast = models.inference.optimize_for_inference(model)   # a copy; `model` is left as it was
    runner = models.inference.for_inference(model, backend="eager" | "onnxruntime")

Both keep the answer: heatmaps equal the eager float32 model's to 1e-4 after min-max normalisation
(tests/models/test_speed.py checks every method). The optimised copy cannot train or be saved as a
checkpoint (folded convolutions have no BatchNorm keys): keep the original for that.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import sys
import warnings
from pathlib import Path

import torch
from soundlens.models.base import SoundLocalizer
from soundlens.models.errors import SoundLensError
from soundlens.models.frontends import AudioFrontend
from soundlens.models.maps import minmax
from soundlens.models.pretrained import home
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

BACKENDS = ("eager", "onnxruntime")
MAP_TOLERANCE = 1e-4  # max |minmax(map) - minmax(eager float32 map)| any inference form may differ by

# (conv, bn) attribute pairs whose forward is bn(conv(x)) with nothing in between, by class name
# (models/encoders.py, models/efficientnet.py). Listed rather than guessed: folding a BatchNorm into a
# conv that does not feed it directly would change the answer. nn.Sequential is handled apart:
# consecutive children run one into the next by definition.
FOLD_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "ResNetTrunk": (("conv1", "bn1"),),
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "EfficientNetLite0": (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")),
    "MBConv": (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")),
}


def _foldable(conv, bn) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d into the Conv2d that feeds it, in place (the BatchNorm becomes
    an Identity). One conv then does the work of conv + BN: a ResNet-18 trunk loses 20 passes over its
    feature maps. Returns how many were folded."""
    folded = 0
    for parent in list(module.modules()):
        pairs = list(FOLD_PAIRS.get(type(parent).__name__, ()))
        if isinstance(parent, nn.Sequential):
            names = [n for n, _ in parent.named_children()]
            pairs += list(zip(names, names[1:]))
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if _foldable(conv, bn):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def optimize_for_inference(model: nn.Module, *, channels_last: bool = False,
                           frontend_dtype: torch.dtype = torch.float64) -> nn.Module:
    """An inference copy of `model`: eval mode, no gradients, BatchNorm folded into the convolutions,
    the front-end's windows and filters cached per device, the spectrogram in `frontend_dtype`
    (float64: float32 changes the DC bin's log and SIRA's map by more than 1e-4, see AudioFrontend).
    `channels_last` stores conv weights NHWC; measured slower for these trunks on this project's
    CPU machine (docs/benchmarks.md#speed), so off unless asked for."""
    fast = copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    fold_batchnorm(fast)
    if getattr(fast, "frontend", None) is not None and getattr(fast, "audio_preset", None) is not None:
        fast.frontend = AudioFrontend(fast.audio_preset, dtype=frontend_dtype)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    fast.inference_form = "eager, BatchNorm folded" + (", channels-last" if channels_last else "")
    return fast


def map_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |minmax(a) - minmax(b)| over maps [B, h, w]: how far two forms' answers are apart."""
    return float((minmax(a.detach().float().cpu()) - minmax(b.detach().float().cpu())).abs().max())


# --- ONNX Runtime ------------------------------------------------------------------------------
class _HeatmapGraph(nn.Module):
    """What is exported: model inputs (images, specs) -> native maps. The front-end stays in torch
    (cached, batched), so the graph has fixed inner shapes and a dynamic batch axis."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        return self.model.heatmap(images, specs)


def state_hash(model: nn.Module) -> str:
    """sha256 of the model's method, config and tensors: equal for the same checkpoint's weights."""
    h = hashlib.sha256(getattr(model, "method", type(model).__name__).encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        h.update(repr(sorted(config.to_dict().items())).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_path(model: nn.Module, checkpoint: str | Path | None = None) -> Path:
    """Where the exported graph is cached: next to the checkpoint, keyed by the checkpoint's sha256
    (`ckpt.<sha256[:16]>.onnx`); a model without a writable checkpoint folder (random weights, the
    shipped ones inside site-packages) goes to $SOUNDLENS_HOME/onnx keyed by its weights' hash."""
    torch_tag = torch.__version__.split("+")[0]
    if checkpoint is not None and Path(checkpoint).is_file():
        checkpoint = Path(checkpoint)
        folder = checkpoint.parent
        if _writable(folder):
            return folder / f"{checkpoint.stem}.{file_hash(checkpoint)[:16]}.torch{torch_tag}.onnx"
    return (home() / "onnx"
            / f"{getattr(model, 'method', 'model')}.{state_hash(model)[:16]}.torch{torch_tag}.onnx")


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def example_inputs(model: nn.Module, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs of the right shapes (random, seeded) for export and checks."""
    g = torch.Generator().manual_seed(seed)
    s = model.image_preset.size
    images = torch.randn(batch, 3, s, s, generator=g)
    specs = torch.randn(batch, *model.audio_preset.shape, generator=g) - 3.0
    return images, specs


def export_onnx(model: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Export `model.heatmap` (BatchNorm folded) to ONNX at `path` (written atomically) and check the
    graph in ONNX Runtime against eager on two batch sizes; a graph that disagrees is deleted and is
    one SoundLensError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fast = optimize_for_inference(model.cpu() if _on_cuda(model) else model)
    graph = _HeatmapGraph(fast).eval()
    tmp = path.with_name(path.name + ".part")
    try:  # the exporter prints whole graphs on failure: one line is the useful part
        with torch.no_grad(), _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, example_inputs(fast, 2), str(tmp), input_names=["images", "specs"],
                              output_names=["heatmap"], opset_version=opset, dynamo=False,
                              dynamic_axes={"images": {0: "batch"}, "specs": {0: "batch"},
                                            "heatmap": {0: "batch"}})
    except Exception as err:  # noqa: BLE001 - every exporter failure is "this model has no ONNX form"
        tmp.unlink(missing_ok=True)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SoundLensError(f"{getattr(model, 'method', 'the model')} cannot be exported to ONNX ({first}); "
                             "use --backend eager") from None
    session = _session(tmp, threads=None)
    for batch in (1, 3):
        images, specs = example_inputs(fast, batch, seed=batch)
        with torch.no_grad():
            want = model.heatmap(images, specs)
        got = torch.from_numpy(session.run(None, {"images": images.numpy(), "specs": specs.numpy()})[0])
        diff = map_difference(got, want)
        if got.shape != want.shape or not diff <= MAP_TOLERANCE:
            tmp.unlink(missing_ok=True)
            raise SoundLensError(f"the ONNX export of {getattr(model, 'method', 'the model')} "
                                 f"disagrees with eager (max min-max difference {diff:.2e} at batch "
                                 f"{batch}); use --backend eager")
    tmp.replace(path)
    return path


@contextlib.contextmanager
def _quiet():
    """Silence stdout and stderr at the file-descriptor level: the TorchScript exporter logs whole
    graphs from C++ (`_jit_onnx_log`) when it fails, which Python's redirect_stdout does not catch."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _on_cuda(model: nn.Module) -> bool:
    return any(p.is_cuda for p in model.parameters())


def _ort():
    try:
        import onnxruntime  # the optional onnx extra, only for --backend onnxruntime
    except ImportError:
        raise SoundLensError("the onnxruntime backend needs ONNX Runtime: pip install "
                             "'soundlens[onnx]'") from None
    return onnxruntime


def _session(path: Path, threads: int | None):
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # torch's thread count, so the two backends are compared (and live) on the same cores; one
    # inter-op thread: these graphs are one chain, parallel branches buy nothing on 2 cores.
    options.intra_op_num_threads = threads if threads else torch.get_num_threads()
    options.inter_op_num_threads = 1
    # No busy-waiting after a run: ORT's pool otherwise spins on both cores for a while after each
    # call, taking them from torch's threads (the front-end, the live pipeline's other stages, and the
    # eager forms `bench speed` interleaves with it, which it made look 3x slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxLocalizer:
    """The model's `localize`/`heatmap` served by ONNX Runtime (CPU execution provider); everything
    else (presets, `prepare`, `cell_centres`, `method`...) is the torch model's. The front-end runs
    in torch (cached). Motion inputs (SIRA's flow) are not in the graph: refused."""

    inference_form = "onnxruntime (CPU execution provider)"

    def __init__(self, model: nn.Module, path: Path, threads: int | None = None):
        if getattr(model, "method", "") == "sira" and getattr(model.config, "flow", False):
            raise SoundLensError("the onnxruntime backend does not take SIRA's flow input; use "
                                 "--backend eager")
        self.model = optimize_for_inference(model)
        self.path = Path(path)
        self.session = _session(self.path, threads)

    def __getattr__(self, name):  # presets, config, method, cell_centres, ...: the torch model's
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise SoundLensError("the onnxruntime backend runs on the CPU; use --backend eager on CUDA")
        return self

    def eval(self):
        return self

    def heatmap(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        feeds = {"images": images.detach().float().cpu().numpy(),
                 "specs": specs.detach().float().cpu().numpy()}
        return torch.from_numpy(self.session.run(None, feeds)[0])

    def localize(self, frames, waveforms, sample_rate: int, previous_frames=None) -> torch.Tensor:
        return self.heatmap(*self.model.prepare(frames, waveforms, sample_rate))


def onnx_localizer(model: nn.Module, checkpoint: str | Path | None = None,
                   threads: int | None = None) -> OnnxLocalizer:
    """The ONNX Runtime form of `model`, exporting (and checking) the graph once into its cache."""
    _ort()
    path = onnx_path(model, checkpoint)
    if not path.is_file():
        export_onnx(model, path)
    return OnnxLocalizer(model, path, threads)


def for_inference(model: nn.Module, backend: str = "eager", *, device: torch.device | str = "cpu",
                  checkpoint: str | Path | None = None, threads: int | None = None, fallback: bool = True):
    """The one call the live worker, `analyze` and `localize` make: `model` in its fastest form that
    keeps the answer on `device`. `backend` "eager": BatchNorm folded, cached front-end;
    "onnxruntime": the checked ONNX graph (CPU). With `fallback`, a form that cannot be built (an
    export the checker refuses, ONNX Runtime missing) leaves the plain eager model, with one line on
    stderr saying why; without, that is the error."""
    if backend not in BACKENDS:
        raise SoundLensError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    device = torch.device(device)
    if not isinstance(model, SoundLocalizer):  # an object that only follows the contract: served as it is
        return model.to(device).eval()
    try:
        if backend == "onnxruntime":
            if device.type != "cpu":
                raise SoundLensError("the onnxruntime backend runs on the CPU; use --backend eager on CUDA")
            return onnx_localizer(model.cpu(), checkpoint, threads)
        return optimize_for_inference(model.to(device))
    except Exception as err:  # noqa: BLE001 - any failure here must leave a working eager model
        if not fallback:
            raise
        print(f"soundlens: {backend} inference form unavailable ({err}); using the plain eager model",
              file=sys.stderr)
        return model.to(device).eval()

