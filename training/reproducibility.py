"""What makes a training run repeatable, and the record of the numerics it ran with.

Two runs with the same seed on the same machine are bit-identical when `--deterministic` is set
(torch's deterministic algorithms; the data order, the augmentations and the procedural scenes are
seeded already). Across machines they are not: ATen picks its CPU kernels by capability (AVX-512,
AVX2 or plain code, `ATEN_CPU_CAPABILITY` forces one), oneDNN has its own ISA dispatch, and the
thread count sets the order of reductions. `numerics()` records all of that next to the seed, in
the run's log and in every checkpoint, so a number can be traced to the configuration that made it.
"""

from __future__ import annotations

import os
import platform

import torch


def set_deterministic(enabled: bool) -> None:
    """Torch's deterministic algorithms on or off (an op without a deterministic kernel then raises).
    cuBLAS needs a fixed workspace for deterministic matrix products; it is set when unset."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def numerics(seed: int | None = None) -> dict:
    """The run's numeric configuration: seed, torch version, CPU capability in use, threads, oneDNN,
    determinism, CUDA device (None on CPU), Python and machine."""
    info = {
        "seed": seed, "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY"), "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "deterministic": torch.are_deterministic_algorithms_enabled(), "python": platform.python_version(),
        "machine": platform.machine(), "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(), "version": torch.version.cuda}
    return info
