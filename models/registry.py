"""The method registry (timm-style): names -> builders and their typed config. Knows no method."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

import soundlens.models
from soundlens.models.errors import SoundLensError


@dataclass(frozen=True)
class Recipe:
    """How a method trains, declared in its own file next to its config.

    train: the paper's optimiser settings (TrainConfig fields; the rest keep TrainConfig's EZ-VSL
        defaults). `soundlens train` starts from these.
    short_run_options / short_run_lr / short_run_schedule: what a short run on procedural still
        pairs needs instead (a few hundred steps on 112 px scenes rather than the papers' tens of
        thousands on VGGSound), each with its reason and measured effect in the method file. The
        learning tests and `soundlens bench accuracy` apply them; `soundlens train` never does.
    """

    train: dict = field(default_factory=dict)
    short_run_options: dict = field(default_factory=dict)
    short_run_lr: float = 1e-3
    short_run_schedule: str = "constant"


@dataclass(frozen=True)
class MethodEntry:
    name: str
    builder: Callable  # config -> model
    config_cls: type
    summary: str
    paper: str
    recipe: Recipe = Recipe()
    official: dict = field(default_factory=dict)  # release name -> models.importers.OfficialSource
    pretrained: tuple = ()  # models.pretrained.PretrainedRelease: the released weights `models pull` fetches


_METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, config_cls: type, summary: str = "", paper: str = "",
                    recipe: Recipe | None = None, official: dict | None = None, pretrained=()):
    """Decorator: register `builder(config) -> model` under `name` with its config dataclass, its
    recipe, the official releases it imports (`soundlens import --from NAME`) and the released
    weights `soundlens models pull` fetches."""

    def wrap(builder: Callable) -> Callable:
        if name in _METHODS:
            raise ValueError(f"method '{name}' registered twice")
        _METHODS[name] = MethodEntry(name, builder, config_cls, summary, paper, recipe or Recipe(),
                                     dict(official or {}),
                                    tuple(pretrained))
        return builder

    return wrap


def _builtin() -> None:
    """Register the built-in methods before a lookup: `soundlens.models` loads them lazily, so a
    caller that imports this module directly must not see an empty registry."""
    soundlens.models.load_methods()


def available(pattern: str = "*") -> list[str]:
    """Registered method names matching a glob pattern, sorted."""
    _builtin()
    return sorted(n for n in _METHODS if fnmatch.fnmatch(n, pattern))


def method_entry(name: str) -> MethodEntry:
    _builtin()
    try:
        return _METHODS[name]
    except KeyError:
        raise SoundLensError(f"unknown method '{name}'; registered: {', '.join(available())}") from None


def make_config(name: str, **config):
    """The method's config dataclass with its paper defaults, overridden by the non-None kwargs."""
    entry = method_entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise SoundLensError(f"{name} has no option {', '.join(unknown)}; options: "
                             f"{', '.join(sorted(fields))}")
    return entry.config_cls(**{k: v for k, v in config.items() if v is not None})


def create(name: str, **config):
    """Build method `name`; unset (None) options keep the paper's defaults."""
    return method_entry(name).builder(make_config(name, **config))
