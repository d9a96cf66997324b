"""The viewer offscreen (pytest-qt), fed by a real Publisher over a loopback TCP socket.

What is checked is what a person sees: the grabbed picture is tinted under the hot part of the
heatmap and is the frame itself elsewhere; a dead publisher is reported, and a restarted one
(new session) is shown again.
"""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np
import pytest
from soundlens.realtime.publisher import Publisher, PublisherConfig

pytest.importorskip("pytestqt")
from soundlens.realtime.viewer import ViewerConfig, ViewerWindow, heat_lut  # noqa: E402  (after the skip)

W, H = 160, 120
BLUE, GREEN, RED = (40, 60, 200), (40, 180, 60), (200, 50, 40)
HOT = (1, 5)  # heatmap cell (row, col) of the sound in a 6 x 8 map: frame x 100-120, y 20-40


def free_tcp_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def two_colour_frame(left=BLUE, right=GREEN) -> np.ndarray:
    frame = np.empty((H, W, 3), np.uint8)
    frame[:, : W // 2] = left
    frame[:, W // 2 :] = right
    return frame


def hot_map() -> np.ndarray:
    heat = np.zeros((6, 8), np.float32)
    heat[HOT] = 1.0
    return heat


def publish_inference(pub: Publisher, inference: int, frame: np.ndarray, heat: np.ndarray,
                      model_id="test") -> None:
    """One inference as `soundlens live --preview` publishes it: heatmap then preview."""
    now = time.monotonic_ns()
    rows, cols = heat.shape
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x, y = (c + 0.5) * W / cols, (r + 0.5) * H / rows
    header = {
        "inference": inference, "stamp_ns": time.time_ns(),
        "mono_ns": {"capture": now, "infer_start": now, "infer_end": now},
        "frame": {"index": inference, "width": W, "height": H},
        "audio": {"sample_rate": 16000, "first_sample": 0, "num_samples": 16000},
        "model": {"id": model_id, "method": "ezvsl"},
        "peaks": [{"u": x / W, "v": y / H, "x": x, "y": y, "score": 1.0}],
    }
    pub.publish("heatmap", "cam0", {**header, "heatmap": {"range": [0.0, 1.0], "region": [0, 0, W, H]}},
                {"heatmap": heat})
    pub.publish("peaks", "cam0", header)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    pub.publish("preview", "cam0", header, {"jpeg": jpeg.tobytes()})


class Feeder:
    """Publishes one inference every 50 ms from a thread until stopped (as a live publisher would)."""

    def __init__(self, address: str, frame: np.ndarray, heat: np.ndarray):
        self.pub = Publisher(PublisherConfig(address=address)).start()
        self.frame, self.heat = frame, heat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        i = 0
        while not self._stop.wait(0.05):
            publish_inference(self.pub, i, self.frame, self.heat)
            if i % 10 == 0:
                self.pub.publish("status", None, {"uptime_s": i * 0.05})
            i += 1

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.pub.close()


def pixel(image, x: int, y: int) -> np.ndarray:
    c = image.pixelColor(int(x), int(y))
    return np.array([c.red(), c.green(), c.blue()])


@pytest.fixture
def viewer(qtbot):
    address = free_tcp_address()
    window = ViewerWindow(ViewerConfig(address=address, stale_after=1.0, opacity=1.0))
    qtbot.addWidget(window)
    window.resize(640, 560)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()


def test_heatmap_tints_the_hot_part_and_leaves_the_rest_as_the_frame(viewer, qtbot, tmp_path):
    feeder = Feeder(viewer.config.address, two_colour_frame(), hot_map())
    try:
        qtbot.waitUntil(lambda: viewer.frames_shown >= 2, timeout=10_000)
        qtbot.wait(100)
        image = viewer.grab_image()
        hot = pixel(image, *viewer.frame_to_widget((HOT[1] + 0.5) * W / 8, (HOT[0] + 0.5) * H / 6 + 4))
        assert np.abs(hot - GREEN).max() > 60, f"hot pixel {hot} should be tinted, frame is {GREEN}"
        for (x, y), colour in [((20, 100), BLUE), ((60, 15), BLUE), ((140, 105), GREEN), ((95, 100), GREEN)]:
            got = pixel(image, *viewer.frame_to_widget(x, y))
            assert np.abs(got - colour).max() <= 8, f"cold pixel at ({x}, {y}) is {got}, frame is {colour}"
        text = viewer.status_label.text()
        assert "heatmaps/s" in text and "model test (ezvsl)" in text and "latency" in text
        assert viewer.peak_labels[0].isVisible() and viewer.peak_labels[0].toPlainText() == "1.00"

        viewer.opacity_slider.setValue(0)  # the slider hides the heatmap
        qtbot.wait(50)
        hot_off = pixel(viewer.grab_image(), *viewer.frame_to_widget(110, 34))
        assert np.abs(hot_off - GREEN).max() <= 8

        viewer.set_held(True)  # hold freezes the picture while messages keep coming
        shown = viewer.frames_shown
        qtbot.wait(300)
        assert viewer.frames_shown == shown and "HOLD" in viewer.status_label.text()
        viewer.set_held(False)
        qtbot.waitUntil(lambda: viewer.frames_shown > shown, timeout=5_000)

        saved = viewer.save_snapshot(tmp_path / "shot.png")
        assert saved.stat().st_size > 1000 and cv2.imread(str(saved)) is not None
    finally:
        feeder.close()


def test_publisher_death_is_reported_and_a_restart_is_shown(viewer, qtbot):
    first = Feeder(viewer.config.address, two_colour_frame(), hot_map())
    try:
        qtbot.waitUntil(lambda: viewer.frames_shown >= 1, timeout=10_000)
        old_session = viewer.session
    finally:
        first.close()
    qtbot.waitUntil(lambda: "publisher lost" in viewer.status_label.text(), timeout=5_000)
    ticks = viewer.status_label.text()
    qtbot.wait(1100)  # still responsive: the timer keeps the status current
    assert viewer.status_label.text() != ticks and "publisher lost" in viewer.status_label.text()

    second = Feeder(viewer.config.address, two_colour_frame(RED, RED), hot_map())
    try:
        qtbot.waitUntil(lambda: viewer.session not in (None, old_session) and viewer.frames_shown >= 2
                        and viewer.shown_preview is not None and viewer.shown_preview[0] == viewer.session,
                        timeout=10_000)
        qtbot.wait(100)
        got = pixel(viewer.grab_image(), *viewer.frame_to_widget(20, 100))
        assert np.abs(got - RED).max() <= 8, f"after the restart the frame should be the new one, got {got}"
        text = viewer.status_label.text()
        assert "reconnected" in text and "publisher lost" not in text
    finally:
        second.close()


def test_lut_alpha_ramps_from_transparent():
    lut = heat_lut("turbo", floor=0.2, max_alpha=200)
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert lut[:51, 3].max() == 0 and lut[-1, 3] == 200
    assert np.all(np.diff(lut[:, 3].astype(int)) >= 0)


def test_view_command_offscreen_screenshot_and_no_display_error(qapp, tmp_path, capsys):
    from soundlens.tools.main import main

    address = free_tcp_address()
    assert main(["view", "--connect", address]) == 2  # offscreen platform: no display to open a window on
    assert "no display" in capsys.readouterr().err

    feeder = Feeder(address, two_colour_frame(), hot_map())
    try:
        shot = tmp_path / "view.png"
        assert main(["view", "--connect", address, "--seconds", "1.5", "--screenshot", str(shot)]) == 0
    finally:
        feeder.close()
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 300 and f"saved {shot}" in capsys.readouterr().out
    # the frame is shown
    assert (np.abs(image.astype(int) - np.array(GREEN[::-1])).max(axis=2) <= 8).sum() > 1000


def test_odd_messages_do_not_break_the_viewer(viewer, qtbot):
    """Valid on the wire but not drawable (1-D map, preview without JPEG, a bad region): skipped,
    counted, and the next good message is shown."""
    pub = Publisher(PublisherConfig(address=viewer.config.address)).start()
    try:
        now = time.monotonic_ns()
        header = {"inference": 0, "stamp_ns": time.time_ns(),
                  "mono_ns": {"capture": now, "infer_start": now, "infer_end": now},
                  "frame": {"index": 0, "width": W, "height": H},
                  "audio": {"sample_rate": 16000, "first_sample": 0, "num_samples": 1},
                  "model": {"id": "odd"}, "peaks": []}
        deadline = time.monotonic() + 5
        while viewer.display_errors == 0 and time.monotonic() < deadline:
            pub.publish("heatmap", "cam0", {**header, "heatmap": {"region": ["left", "top"]}},
                        {"heatmap": hot_map()})
            qtbot.wait(60)
        assert viewer.display_errors > 0 and "cannot draw" in viewer.status_label.text()
        for _ in range(5):
            pub.publish("heatmap", "cam0", header, {"heatmap": np.ones(10, np.float32)})
            pub.publish("preview", "cam0", header)
            qtbot.wait(60)
        shown = viewer.frames_shown
        for i in range(1, 40):
            publish_inference(pub, i, two_colour_frame(), hot_map())
            qtbot.wait(50)
            if viewer.frames_shown > shown and viewer._has_preview:
                break
        assert viewer.frames_shown > shown and viewer._has_preview
    finally:
        pub.close()
