"""The SoundLens model zoo: one interface, a registry, presets and safe checkpoints.

    from soundlens import models
    models.available()                       # ['ezvsl', 'lvs', ...]
    model = models.create("ezvsl", encoder="lite")
    model = models.load("default")           # or a .safetensors path
    maps = model.heatmap(*model.prepare(frames, waveforms, sample_rate))

The names below load on first use (PEP 562), together with the built-in methods: importing a light
module such as `soundlens.models.errors` (which every realtime client does) must not import torch.
"""

import importlib

# public name -> the module that defines it
_LAZY = {
    "MethodConfig": "base", "SoundLocalizer": "base",
    "describe": "checkpoint", "load": "checkpoint", "save": "checkpoint",
    "build_encoder": "encoders", "load_pretrained": "encoders",
    "AudioFrontend": "frontends", "audio_frontend": "frontends",
    "prepare_images": "images",
    "minmax": "maps", "peak_xy": "maps", "resize_map": "maps",
    "AUDIO_PRESETS": "presets", "IMAGE_PRESETS": "presets", "AudioPreset": "presets",
    "ImagePreset": "presets", "audio_preset": "presets", "image_preset": "presets",
    "available": "registry", "create": "registry", "make_config": "registry", "method_entry": "registry",
    "register_method": "registry",
}
_METHOD_MODULES = ("ezvsl", "jsa", "lvs", "sira", "slavc", "sslalign")


def load_methods() -> None:
    """Import (and so register) the built-in methods; the registry calls it before any lookup."""
    for name in _METHOD_MODULES:
        importlib.import_module(f"soundlens.models.methods.{name}")


def __getattr__(name: str):
    if name in _LAZY:
        load_methods()
        value = getattr(importlib.import_module(f"soundlens.models.{_LAZY[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'soundlens.models' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
