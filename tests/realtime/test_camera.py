"""CameraSource with real OpenCV captures: a device path that disappears and comes back."""

from __future__ import annotations

import time

import numpy as np
from rt_helpers import write_test_video
from soundlens.realtime.sources import CameraConfig, CameraSource
from soundlens.realtime.sources.camera import parse_device


def wait_for(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_camera_reconnects_with_backoff_when_the_device_disappears(tmp_path):
    device = tmp_path / "camera.mp4"  # a real file OpenCV opens like a device path
    write_test_video(device, frames=60, size=(64, 48))  # its end also reads as a lost device: reopened
    away = tmp_path / "unplugged.mp4"
    config = CameraConfig(device=str(device), max_fps=100, max_failures=2, backoff=0.05, max_backoff=0.2)
    with CameraSource(config) as camera:
        assert wait_for(lambda: camera.stats.frames_in >= 20)
        frame = camera.frames.newest()
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert frame.image[8:16].max() == 255  # RGB white square survived decode
        # The device goes away: the open capture fails at the latest at its end, and reopening fails.
        device.rename(away)
        assert wait_for(lambda: sum("cannot open" in m for _, m in camera.errors) >= 3)
        delays = [float(m.rsplit("retrying in ", 1)[1].split()[0]) for _, m in camera.errors
                  if "cannot open" in m]
        assert delays[:3] == sorted(delays[:3]) and max(delays) <= 0.2  # exponential, capped
        assert not camera.connected
        before = camera.stats.frames_in
        reconnects = camera.stats.reconnects
        away.rename(device)  # plugged back in
        assert wait_for(lambda: camera.stats.frames_in > before + 10)
        assert camera.stats.reconnects > reconnects
        assert any("reconnected" in m for _, m in camera.errors)
        assert not camera.finished.is_set()  # a camera never gives up
    assert not camera.connected  # released on stop


def test_camera_that_never_opens_reports_instead_of_raising():
    with CameraSource(CameraConfig(device="/nonexistent/video99", backoff=0.05, max_backoff=0.1)) as camera:
        assert wait_for(lambda: camera.error_count >= 2)
        assert camera.stats.frames_in == 0 and "cannot open" in camera.last_error


def test_parse_device():
    assert parse_device("0") == 0 and parse_device(" 2") == 2
    assert parse_device("/dev/video0") == "/dev/video0"
    assert parse_device("rtsp://cam/stream") == "rtsp://cam/stream"
