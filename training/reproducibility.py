"""What makes a training run repeatable, and the record of the numerics it ran with.

Two runs with the same seed on the same machine are bit-identical when `--deterministic` is set
(torch's deterministic algorithms; the data order, the augmentations and the procedural scenes are
seeded already). Across machines they are not, and three libraries choose kernels independently:
ATen by capability (AVX-512, AVX2 or plain code; `ATEN_CPU_CAPABILITY` forces one), oneDNN (the
convolutions) by its own ISA dispatch (`ONEDNN_MAX_CPU_ISA` caps it) and MKL (matrix products) by
its code branch (`MKL_CBWR`); the thread count sets the order of reductions. Forcing ATen alone
leaves oneDNN and MKL on the machine's best kernels, so `ATEN_CPU_CAPABILITY=avx2` on an AVX-512 CPU
does not compute what an AVX2 CPU computes. `NUMERICS_PROFILES` names environments that change all
three at once (the learning tests' variation); `numerics()` records all of it next to the seed, in
the run's log and in every checkpoint, so a number can be traced to the configuration that made it.
"""

from __future__ import annotations

import os
import platform

import torch

# Environment of a process (read when torch starts) that picks one kind of kernel in each library.
# "native": the machine's best; "default": the plain kernels every x86-64 CPU runs, the numerics most
# unlike an AVX-512 or AVX2 machine's; "avx2": what an AVX2-only CPU computes (on any AVX2 CPU).
NUMERICS_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
NUMERICS_PROFILES: dict[str, dict[str, str]] = {
    "native": {},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}


def set_deterministic(enabled: bool) -> None:
    """Torch's deterministic algorithms on or off (an op without a deterministic kernel then raises).
    cuBLAS needs a fixed workspace for deterministic matrix products; it is set when unset."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Only on a change: the call imports torch._dynamo (seconds of start-up per training process).
    if torch.are_deterministic_algorithms_enabled() != enabled:
        torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def numerics(seed: int | None = None) -> dict:
    """The run's numeric configuration: seed, torch version, CPU capability in use, threads, oneDNN,
    determinism, CUDA device (None on CPU), Python and machine."""
    info = {
        "seed": seed, "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY"),
        "kernel_env": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ},
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "deterministic": torch.are_deterministic_algorithms_enabled(), "python": platform.python_version(),
        "machine": platform.machine(), "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(), "version": torch.version.cuda}
    return info
