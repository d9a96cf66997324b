"""Official checkpoints -> SoundLens checkpoints (`soundlens import`), timm `checkpoint_filter_fn` style.

Each method file declares, per official release (`OfficialSource`), the SoundLens method and presets it needs
and how its keys map (official_repos.md §2, §7.3). `import_official` reads the file with
`torch.load(weights_only=True)` only, unwraps the container (`model`, `model_state_dict`, `state_dict`) and
the DDP / Lightning prefixes (`module.`, `model.`), remaps the keys, drops the parameters the releases carry
but never use, compares with the method strictly (every missing, unexpected and reshaped key is listed; the
import refuses unless `allow_missing`) and writes the model with `models.save`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from soundlens.models.checkpoint import save
from soundlens.models.errors import SoundLensError
from soundlens.models.registry import available, create, method_entry

CONTAINERS = ("model", "model_state_dict", "state_dict")  # §7.3
PREFIXES = ("module.", "model.")  # DDP / DataParallel, Lightning (§7.3)


def _identity(state: dict) -> dict:
    return dict(state)


def remap_avenet(state: dict) -> dict:
    """LVS `AVENet` (also SSL-Align "ours" and SSL-TIE): each branch carries three stems (`conv1`
    3-ch, `conv1_a` 1-ch, `conv1_flow` 6-ch) and an `fc` (§2.3). The image branch keeps `conv1`, the
    audio branch's `conv1_a` becomes our `conv1`; the other stems and `fc` are never used and dropped."""
    own = {"imgnet": "conv1", "audnet": "conv1_a"}
    out = {}
    for key, value in state.items():
        branch, _, rest = key.partition(".")
        if branch in own:
            stem = rest.split(".", 1)[0]
            if stem in ("conv1", "conv1_a", "conv1_flow", "fc") and stem != own[branch]:
                continue
            if stem == own[branch]:
                key = f"{branch}.conv1{rest[len(stem):]}"
        out[key] = value
    return out


@dataclass(frozen=True)
class OfficialSource:
    """One official release: the SoundLens method + config it imports into, and its key remap."""

    method: str
    config: dict = field(default_factory=dict)
    remap: Callable[[dict], dict] = _identity
    origin: str = ""


def official_sources() -> dict[str, OfficialSource]:
    """Every official release SoundLens imports, by name: the `OFFICIAL` sources each method file
    registers with `register_method` (like timm's `default_cfgs` next to each model)."""
    return {name: src for m in available() for name, src in method_entry(m).official.items()}


@dataclass
class ImportResult:
    path: Path
    method: str
    loaded: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # "key: official shape -> SoundLens shape"


def _numpy_scalar_globals() -> list:
    # EZ-VSL-style checkpoints store best scores as numpy scalars next to the weights; these plain
    # data types are allow-listed, nothing else is (weights_only stays on).
    # Files written under numpy 1 name the scalar constructor `numpy.core.multiarray.scalar`.
    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in ("f2", "f4", "f8", "i4", "i8", "?")]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype] + dtypes


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an official checkpoint: weights-only load, container unwrapped, prefixes stripped."""
    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SoundLensError(f"cannot read {path} as a weights-only PyTorch file ({err.__class__.__name__}: "
                             f"{str(err).splitlines()[0][:200]}); SoundLens never unpickles code") from None
    while isinstance(obj, dict) and any(isinstance(obj.get(k), dict) for k in CONTAINERS):
        obj = next(obj[k] for k in CONTAINERS if isinstance(obj.get(k), dict))
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise SoundLensError(f"{path} holds no state dict (looked in {', '.join(CONTAINERS)})")
    state = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            continue
        while key.startswith(PREFIXES):
            key = key.split(".", 1)[1]
        state[key] = value
    return state


def import_official(source: str, src: str | Path, out: str | Path, allow_missing: bool = False,
                    extra: dict | None = None) -> ImportResult:
    """Convert official checkpoint `src` of release `source` (an `official_sources()` key) to a SoundLens
    checkpoint. `extra` is added to its `trained_on` metadata (`models pull` records the release there)."""
    sources = official_sources()
    if source not in sources:
        raise SoundLensError(f"unknown official source '{source}'; choose one of {', '.join(sources)}")
    spec = sources[source]
    state = spec.remap(read_official(src))
    model = create(spec.method, **spec.config)
    target = model.state_dict()
    # BatchNorm's `num_batches_tracked` counter does not change any output; old files lack it.
    missing = sorted(k for k in target if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in target)
    mismatched = sorted(f"{k}: {tuple(state[k].shape)} -> {tuple(target[k].shape)}"
                        for k in state if k in target and state[k].shape != target[k].shape)
    if (missing or unexpected or mismatched) and not allow_missing:
        lines = [f"  missing: {k}" for k in missing] + [f"  unexpected: {k}" for k in unexpected] + \
                [f"  other shape: {k}" for k in mismatched]
        raise SoundLensError(
            f"{src} does not match the official {source} layout ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} with another shape); is it a {source} checkpoint? Pass "
            "--allow-missing to import anyway (absent weights keep their random initialisation):\n"
            + "\n".join(lines))
    usable = {k: v.to(target[k].dtype) for k, v in state.items()
              if k in target and v.shape == target[k].shape}
    model.load_state_dict(usable, strict=False)
    trained_on = {"imported_from": source, "source_file": Path(src).name, "origin": spec.origin,
                  "missing": missing, "unexpected": unexpected, "mismatched": mismatched, **(extra or {})}
    path = save(model.eval(), out, trained_on=trained_on)
    return ImportResult(path, spec.method, len(usable), missing, unexpected, mismatched)
