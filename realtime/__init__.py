"""SoundLens live pipeline: capture sources -> ring buffers -> inference worker -> soundlens.v1 over ZeroMQ.

Light parts (wire format, rings, publisher, `Subscriber`) import with numpy and pyzmq only, so a
client needs no torch; the worker and pipeline load on first use.

    from soundlens.realtime import Subscriber, wire
    with Subscriber("tcp://127.0.0.1:5555") as sub:
        loc = sub.recv(wire.topic("heatmap", "cam0"), timeout=2.0).localization()
        loc.heatmap, loc.peaks[0].u, loc.timing.capture_ns
"""

from __future__ import annotations

import importlib

from soundlens.realtime import wire
from soundlens.realtime.clock import FixedClock, SampleClock
from soundlens.realtime.publisher import DEFAULT_ADDRESS, Publisher, PublisherConfig, is_loopback
from soundlens.realtime.result import Localization, Peak
from soundlens.realtime.ring import AudioRing, Frame, FrameRing
from soundlens.realtime.subscriber import Subscriber, SubscriberStats

_LAZY = {
    "InferenceWorker": "soundlens.realtime.worker",
    "WorkerConfig": "soundlens.realtime.worker",
    "LivePipeline": "soundlens.realtime.pipeline",
    "LiveConfig": "soundlens.realtime.pipeline",
    "Localizer": "soundlens.realtime.localizer",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")


__all__ = [
    "DEFAULT_ADDRESS", "AudioRing", "FixedClock", "Frame", "FrameRing", "InferenceWorker", "LiveConfig",
    "LivePipeline", "Localization", "Localizer", "Peak", "Publisher", "PublisherConfig", "SampleClock",
    "Subscriber", "SubscriberStats", "WorkerConfig", "is_loopback", "wire",
]
