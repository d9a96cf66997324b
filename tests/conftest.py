"""Shared fixtures: the real reference material (skipped when absent) and the shipped model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PyQt5")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("SOUNDLENS_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures: real annotations and clips (never committed; a user's clone lacks them)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {FIXTURES} (set SOUNDLENS_FIXTURES to their folder)")
    return FIXTURES


@pytest.fixture(scope="session")
def trained_lite_model():
    """The shipped default model: a lite encoder trained on the procedural benchmark."""
    from soundlens import models

    return models.load("default")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    """An untrained lite EZ-VSL saved as a real SoundLens checkpoint: a real model's maps, for tests of
    the plumbing (live, analyze, the wire), which does not depend on training."""
    from soundlens import models

    path = tmp_path_factory.mktemp("ckpt") / "lite.safetensors"
    models.save(models.create("ezvsl", encoder="lite"), path)
    return str(path)
