"""Seeded procedural audio-visual benchmark: shapes that sound, one at a time.

`make_scene` draws one frame + clip with ground truth; `SynthPairs` is the lazy torch
dataset; `write_pairs` writes the VGG-SS-style layout; `SynthVideo`/`write_video` render
moving objects whose sounding one changes over time.
"""

from soundlens.training.synth.classes import CLASSES, SPECS, ClassSpec
from soundlens.training.synth.pairs import SynthPairs, item_id, item_scene, write_pairs
from soundlens.training.synth.scene import Scene, SceneConfig, make_scene
from soundlens.training.synth.video import Segment, SynthVideo, write_video

__all__ = [
    "CLASSES", "SPECS", "ClassSpec", "Scene", "SceneConfig", "make_scene", "SynthPairs", "item_id",
    "item_scene", "write_pairs", "Segment", "SynthVideo", "write_video",
]
