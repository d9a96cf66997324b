"""Seeded procedural audio-visual benchmark: shapes that sound, one at a time.

`make_scene` draws one frame + 3 s clip with ground truth; `SynthPairs` is the lazy torch
dataset; `write_pairs` writes the VGG-SS-style layout; `SynthVideo`/`write_video` render
moving objects whose sounding one changes over time.
"""

from training.synth.classes import CLASSES, SPECS, ClassSpec
from training.synth.scene import Scene, SceneConfig, make_scene

__all__ = ["CLASSES", "SPECS", "ClassSpec", "Scene", "SceneConfig", "make_scene"]
