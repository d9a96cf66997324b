"""Where a model runs: the one reading of `--device` for training, evaluation, live and offline use."""

from __future__ import annotations

import torch
from soundlens.models.errors import SoundLensError


def pick_device(name: str | None = None, local_rank: int = 0) -> torch.device:
    """None or 'auto': CUDA when available, else CPU; 'cuda' is this process's GPU (`local_rank`
    under torchrun, so each process gets its own); 'cuda:N', 'cpu' as written."""
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SoundLensError(f"--device {name} asked for CUDA but torch sees no GPU; use --device cpu")
        if name == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
    try:
        return torch.device(name)
    except RuntimeError:
        raise SoundLensError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None


def describe_device(device: torch.device) -> str:
    """'cuda:0 (NVIDIA H100 ...)' or 'cpu (2 threads)': what status lines and meta messages show."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
