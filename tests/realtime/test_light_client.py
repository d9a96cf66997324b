"""A robot client imports the subscriber side without torch (models/__init__ loads lazily)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import soundlens.realtime.subscriber
from soundlens.realtime import Subscriber, wire
from soundlens.models.errors import SoundLensError
heavy = sorted(m for m in ("torch", "torchvision", "torchaudio", "cv2") if m in sys.modules)
assert not heavy, f"a subscriber imported {heavy}"
"""

FULL = """
import sys
from soundlens import models
from soundlens.models.registry import available
assert "torch" not in sys.modules
assert "ezvsl" in available()  # the registry loads the built-in methods itself
assert models.available() == available()
model = models.create("ezvsl", encoder="lite")
assert isinstance(model, models.SoundLocalizer) and models.describe(model)["method"] == "ezvsl"
assert "resize_map" in dir(models) and "torch" in sys.modules
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_subscriber_imports_without_torch():
    proc = run(CHECK)
    assert proc.returncode == 0, proc.stderr


def test_models_names_still_work_when_loaded_lazily():
    proc = run(FULL)
    assert proc.returncode == 0, proc.stderr
