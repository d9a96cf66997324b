"""Fixtures of the model-zoo tests."""

import pytest


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A fresh SoundLens cache ($SOUNDLENS_HOME) for downloads, pulls and exported graphs."""
    monkeypatch.setenv("SOUNDLENS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
