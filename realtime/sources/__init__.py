"""Capture sources behind one interface (realtime.sources.base.Source)."""

from soundlens.realtime.sources.base import Source, SourceStats
from soundlens.realtime.sources.camera import CameraConfig, CameraSource
from soundlens.realtime.sources.media import MediaSource, Pacer
from soundlens.realtime.sources.microphone import MicrophoneConfig, MicrophoneSource, import_sounddevice
from soundlens.realtime.sources.synthetic import SyntheticConfig, SyntheticSource
from soundlens.realtime.sources.video import VideoFileConfig, VideoFileSource

__all__ = [
    "CameraConfig", "CameraSource", "MediaSource", "MicrophoneConfig", "MicrophoneSource", "Pacer",
    "Source", "SourceStats", "SyntheticConfig", "SyntheticSource", "VideoFileConfig", "VideoFileSource",
    "import_sounddevice",
]
