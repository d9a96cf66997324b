"""Capture sources behind one interface (realtime.sources.base.Source)."""

from realtime.sources.base import Source, SourceStats
from realtime.sources.camera import CameraConfig, CameraSource
from realtime.sources.media import MediaSource, Pacer
from realtime.sources.microphone import MicrophoneConfig, MicrophoneSource, import_sounddevice
from realtime.sources.synthetic import SyntheticConfig, SyntheticSource
from realtime.sources.video import VideoFileConfig, VideoFileSource

__all__ = [
    "CameraConfig", "CameraSource", "MediaSource", "MicrophoneConfig", "MicrophoneSource", "Pacer",
    "Source", "SourceStats", "SyntheticConfig", "SyntheticSource", "VideoFileConfig", "VideoFileSource",
    "import_sounddevice",
]
