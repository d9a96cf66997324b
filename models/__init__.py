"""The SoundLens model zoo: one interface, a registry, presets and safe checkpoints.

    from soundlens import models
    models.available()                       # ['ezvsl', 'lvs', ...]
    model = models.create("ezvsl", encoder="lite")
    model = models.load("default")           # or a .safetensors path
    maps = model.heatmap(*model.prepare(frames, waveforms, sample_rate))
"""

from soundlens.models import methods as _methods  # noqa: F401  (registers the built-in methods)
from soundlens.models.base import MethodConfig, SoundLocalizer
from soundlens.models.checkpoint import describe, load, save
from soundlens.models.encoders import build_encoder, load_pretrained
from soundlens.models.frontends import AudioFrontend, audio_frontend
from soundlens.models.images import prepare_images
from soundlens.models.maps import minmax, peak_xy, resize_map
from soundlens.models.methods import ezvsl as _ezvsl  # noqa: F401
from soundlens.models.methods import jsa as _jsa  # noqa: F401
from soundlens.models.methods import lvs as _lvs  # noqa: F401
from soundlens.models.methods import sira as _sira  # noqa: F401
from soundlens.models.methods import slavc as _slavc  # noqa: F401
from soundlens.models.methods import sslalign as _sslalign  # noqa: F401
from soundlens.models.presets import (
    AUDIO_PRESETS,
    IMAGE_PRESETS,
    AudioPreset,
    ImagePreset,
    audio_preset,
    image_preset,
)
from soundlens.models.registry import available, create, make_config, method_entry, register_method

__all__ = [
    "AUDIO_PRESETS", "IMAGE_PRESETS", "AudioFrontend", "AudioPreset", "ImagePreset", "MethodConfig",
    "SoundLocalizer", "audio_frontend", "audio_preset", "available", "build_encoder", "create", "describe",
    "image_preset", "load", "load_pretrained", "make_config", "method_entry", "minmax", "peak_xy",
    "prepare_images", "register_method", "resize_map", "save",
]
