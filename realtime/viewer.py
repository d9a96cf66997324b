"""The SoundLens viewer: a PyQt5 + pyqtgraph window over a soundlens.v1 stream.

What a person sees: the camera frame (the `preview` topic), the heatmap stretched over the part
of the frame it covers with a colormap whose alpha ramps up (cold cells leave the frame's own
pixels), the top peaks as rings with their scores, an opacity slider, hold and snapshot buttons,
and a status bar with heatmaps/s, latency, drops and the model.

Threading: the `Subscriber` receive thread drains the socket and keeps the newest message per
topic; its listener only appends timestamps and heatmaps to bounded deques. A ~30 Hz `QTimer`
on the GUI thread reads the newest messages and redraws when something changed. There is no Qt
signal per message, so a fast publisher can never flood the event queue.

A publisher that goes quiet is reported in the status bar after `stale_after` seconds; ZeroMQ
reconnects on its own when a publisher binds the address again, and the new session id shows
up as "reconnected".
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.realtime import wire
from soundlens.realtime.overlay import COLORMAP, FLOOR, heat_lut
from soundlens.realtime.publisher import DEFAULT_ADDRESS, is_loopback
from soundlens.realtime.result import Localization, Peak
from soundlens.realtime.subscriber import Subscriber

if "pyqtgraph" not in sys.modules:
    os.environ["PYQTGRAPH_QT_LIB"] = "PyQt5"  # pyqtgraph would prefer PyQt6/PySide6 if installed
import pyqtgraph as pg  # noqa: E402  (after pinning the binding)
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets  # noqa: E402

if pg.Qt.QT_LIB != "PyQt5":
    raise SoundLensError(
        f"pyqtgraph was loaded with {pg.Qt.QT_LIB} before the viewer pinned PyQt5; "
        "set PYQTGRAPH_QT_LIB=PyQt5 in the environment"
    )


@dataclass
class ViewerConfig:
    address: str = DEFAULT_ADDRESS
    stream: str = "cam0"
    refresh_hz: float = 30.0  # redraw timer; messages in between are superseded, never queued
    stale_after: float = 3.0  # seconds without any message before the publisher counts as gone
    opacity: float = 0.75  # heatmap layer opacity (the slider)
    colormap: str = COLORMAP  # the one SoundLens draws with (realtime.overlay)
    floor: float = FLOOR  # normalised scores below this are fully transparent
    max_alpha: int = 220  # alpha of the hottest colour (0-255)
    upsample: int = 8  # bilinear pixels per heatmap cell
    snapshot_dir: str = "."
    curve_server_key: str | None = None  # server public key (z85 text or certificate file)
    title: str = "SoundLens"


def decode_jpeg(data: np.ndarray) -> np.ndarray | None:
    """JPEG bytes (uint8 array) -> uint8 RGB [H, W, 3] C-contiguous, None if undecodable."""
    if data.size == 0:
        return None
    bgr = cv2.imdecode(np.asarray(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def display_available() -> bool:
    """True when Qt can open a real window here (a display is set and the platform plugin loads).

    Probed in a child process: a QApplication that cannot load its platform plugin aborts the
    process it runs in."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in ("offscreen", "minimal", "vnc"):
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return False
    probe = "from PyQt5.QtWidgets import QApplication; QApplication(['probe'])"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_app(offscreen: bool = False) -> QtWidgets.QApplication:
    """The process's QApplication (created on first use; `offscreen` renders without a display)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        if offscreen:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QtWidgets.QApplication([sys.argv[0] if sys.argv else "soundlens"])
    return app


def _get(data: dict, *keys):
    """data[k1][k2]... or None when any level is missing."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


class _Feed:
    """What the subscriber's receive thread hands the GUI: timestamps and recent heatmaps.

    Only deque appends and attribute stores happen on the receive thread (atomic under the GIL)."""

    def __init__(self, heat_topic: str, same_host: bool):
        self.heat_topic = heat_topic
        self.same_host = same_host
        self.last_any_ns = 0  # monotonic ns of the newest valid message on any topic
        self.heat_times: collections.deque[int] = collections.deque(maxlen=120)
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=120)
        self.recent: collections.deque[tuple[wire.Message, Localization]] = collections.deque(maxlen=64)

    def __call__(self, msg: wire.Message, recv_ns: int) -> None:
        self.last_any_ns = recv_ns
        if msg.topic != self.heat_topic:
            return
        loc = msg.localization()
        self.heat_times.append(recv_ns)
        self.recent.append((msg, loc))
        if self.same_host:  # mono_ns is the publisher host's monotonic clock: comparable only there
            self.latencies_ms.append((recv_ns - loc.timing.capture_ns) / 1e6)

    def heatmap_for(self, session: str, inference: int) -> wire.Message | None:
        for msg, loc in reversed(list(self.recent)):
            if msg.session == session and loc.inference == inference:
                return msg
        return None

    def rate(self, now_ns: int, window_s: float = 2.0) -> float:
        times = [t for t in list(self.heat_times) if now_ns - t <= window_s * 1e9]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max((times[-1] - times[0]) / 1e9, 1e-9)

    def latency_p50(self) -> float | None:
        values = list(self.latencies_ms)[-30:]
        return float(np.median(values)) if values else None


class ViewerWindow(QtWidgets.QMainWindow):
    """`ViewerWindow(ViewerConfig(address=...)).show()`; needs a QApplication (see `ensure_app`).

    `should_close()`, if given, is polled by the timer: True closes the window (e.g. the pipeline
    of `soundlens live --view` ended). `on_close()` runs once when the window closes.
    """

    def __init__(self, config: ViewerConfig | None = None, *, should_close=None, on_close=None):
        super().__init__()
        self.config = cfg = config or ViewerConfig()
        wire.check_stream(cfg.stream)
        self.should_close = should_close
        self.on_close = on_close
        self.heat_topic = wire.topic("heatmap", cfg.stream)
        self.preview_topic = wire.topic("preview", cfg.stream)
        self.status_topic = wire.topic("status")
        self.feed = _Feed(self.heat_topic, is_loopback(cfg.address))
        self.subscriber = Subscriber(cfg.address,
                                     topics=(self.heat_topic, self.preview_topic, self.status_topic),
                                     curve_server_key=cfg.curve_server_key, listener=self.feed)
        self.held = False
        self.frames_shown = 0  # redraws with a new frame or heatmap (tests wait on it)
        self.display_errors = 0  # messages that could not be drawn (reported in the status bar)
        self.shown_heat: tuple[str, int] | None = None  # (session, seq) of the heatmap on screen
        self.shown_preview: tuple[str, int] | None = None
        self.session: str | None = None  # publisher session on screen
        self.sessions_seen = 0
        self._reconnected_at = 0.0
        self._frame_size: tuple[int, int] | None = None
        self._has_preview = False
        self._message = ("", 0.0)  # transient status text and when it expires
        self._closed = False
        self.screenshot_on_close: str | None = None  # save a snapshot here when the window closes
        self.screenshot_saved: Path | None = None
        self._started = time.monotonic()
        self._build()
        self.subscriber.start()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(max(1, int(round(1000 / cfg.refresh_hz))))

    # --- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        self.setWindowTitle(f"{cfg.title} - {cfg.address} [{cfg.stream}]")
        pg.setConfigOptions(antialias=True, useOpenGL=False)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.graphics.ci.setContentsMargins(0, 0, 0, 0)
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.view.setMenuEnabled(False)
        self.view.setDefaultPadding(0.0)

        self.frame_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item.setLookupTable(heat_lut(cfg.colormap, cfg.floor, cfg.max_alpha))
        self.heat_item.setLevels((0.0, 1.0))
        self.heat_item.setZValue(10)
        self.heat_item.setOpacity(cfg.opacity)
        self.peak_rings = pg.ScatterPlotItem(symbol="o", size=22, pxMode=True, brush=None,
                                             pen=pg.mkPen((255, 255, 255), width=2.5))
        self.peak_rings.setZValue(20)
        self.peak_labels: list[pg.TextItem] = []
        self.banner = pg.TextItem("", color=(235, 235, 235), fill=pg.mkBrush(0, 0, 0, 170), anchor=(0, 0))
        self.banner.setZValue(30)
        for item in (self.frame_item, self.heat_item, self.peak_rings, self.banner):
            self.view.addItem(item)
        self._show_placeholder(640, 480)

        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(round(cfg.opacity * 100)))
        self.opacity_slider.setToolTip("heatmap opacity")
        self.opacity_slider.valueChanged.connect(lambda v: self.heat_item.setOpacity(v / 100.0))
        self.hold_button = QtWidgets.QPushButton("Hold (Space)")
        self.hold_button.setCheckable(True)
        self.hold_button.toggled.connect(self.set_held)
        self.snapshot_button = QtWidgets.QPushButton("Save snapshot (S)")
        self.snapshot_button.clicked.connect(lambda: self.save_snapshot())
        controls = QtWidgets.QHBoxLayout()
        controls.setContentsMargins(8, 4, 8, 4)
        controls.addWidget(QtWidgets.QLabel("Heatmap opacity"))
        controls.addWidget(self.opacity_slider, 1)
        controls.addWidget(self.hold_button)
        controls.addWidget(self.snapshot_button)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(controls)
        self.setCentralWidget(central)
        self.status_label = QtWidgets.QLabel("")
        self.statusBar().addWidget(self.status_label, 1)

        for key, slot in ((QtCore.Qt.Key_Space, lambda: self.hold_button.toggle()),
                          (QtCore.Qt.Key_S, lambda: self.save_snapshot()),
                          (QtCore.Qt.Key_Escape, self.close), (QtCore.Qt.Key_Q, self.close)):
            QtWidgets.QShortcut(QtGui.QKeySequence(key), self, activated=slot)
        self.resize(820, 700)

    # --- drawing ---------------------------------------------------------------------------
    def _set_frame_size(self, width: int, height: int) -> None:
        if self._frame_size != (width, height):
            self._frame_size = (width, height)
            self.view.setRange(xRange=(0, width), yRange=(0, height), padding=0.0)
            self.banner.setPos(4, 4)

    def _show_placeholder(self, width: int, height: int) -> None:
        """A dark frame of the right size until (or when no) preview frames arrive."""
        self.frame_item.setImage(np.full((8, 8, 3), 32, np.uint8), autoLevels=False, levels=None)
        self.frame_item.setRect(QtCore.QRectF(0, 0, width, height))
        self._set_frame_size(width, height)

    def _show_frame(self, rgb: np.ndarray, width: int, height: int) -> None:
        self.frame_item.setImage(rgb, autoLevels=False, levels=None)
        self.frame_item.setRect(QtCore.QRectF(0, 0, width, height))  # previews may be downscaled
        self._set_frame_size(width, height)

    def _show_heatmap(self, msg: wire.Message) -> None:
        loc = msg.localization()
        width, height = loc.frame.width, loc.frame.height
        heat = loc.heatmap
        if heat is None or heat.ndim != 2 or heat.size == 0:
            return
        # Each cell's value centred where the cell looks (protocol §5): Qt draws the image's pixels as
        # equal blocks over the rectangle, so the rectangle is the cells' extent, not the region.
        x0, y0, x1, y1 = loc.centres.extent(heat.shape) if loc.centres is not None else loc.region
        heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
        up = max(1, int(self.config.upsample))
        if up > 1:
            heat = cv2.resize(heat, (heat.shape[1] * up, heat.shape[0] * up), interpolation=cv2.INTER_LINEAR)
        self.heat_item.setImage(np.ascontiguousarray(np.clip(heat, 0.0, 1.0)), autoLevels=False,
                                levels=(0.0, 1.0))
        self.heat_item.setRect(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
        self._show_peaks(loc.peaks, width, height)
        if not self._has_preview:
            self._show_placeholder(width, height)

    def _show_peaks(self, peaks: tuple[Peak, ...], width: int, height: int) -> None:
        self.peak_rings.setData([p.x for p in peaks], [p.y for p in peaks])
        while len(self.peak_labels) < len(peaks):
            label = pg.TextItem("", color=(255, 255, 255), fill=pg.mkBrush(0, 0, 0, 150),
                                anchor=(-0.15, 1.15))
            label.setZValue(21)
            self.view.addItem(label)
            self.peak_labels.append(label)
        for i, label in enumerate(self.peak_labels):
            if i < len(peaks):
                peak = peaks[i]
                label.setText(f"{peak.score:.2f}")
                near_top, near_right = peak.y < 0.12 * height, peak.x > 0.85 * width
                label.setAnchor((1.15 if near_right else -0.15, -0.15 if near_top else 1.15))
                label.setPos(peak.x, peak.y)
                label.show()
            else:
                label.hide()

    def _tick(self) -> None:
        """Timer slot. Never raises: PyQt5 aborts the process on an exception escaping a slot, and
        a message that is valid on the wire may still hold something this viewer cannot draw."""
        try:
            self._refresh()
        except Exception as err:
            self.display_errors += 1
            self._message = (f"cannot draw the latest message: {type(err).__name__}: {err}",
                             time.monotonic() + 5.0)
            with contextlib.suppress(Exception):
                self._update_status()

    def _refresh(self) -> None:
        if self._closed:
            return
        if self.should_close is not None and self.should_close():
            self.close()
            return
        heat = self.subscriber.latest(self.heat_topic)
        preview = self.subscriber.latest(self.preview_topic)
        if heat is not None and heat.session != self.session:
            self._new_session(heat.session)
        if not self.held and heat is not None:
            self._redraw(heat, preview)
        self._update_status()

    def _new_session(self, session: str) -> None:
        if self.session is not None:
            self._reconnected_at = time.monotonic()
        self.session = session
        self.sessions_seen += 1
        self._has_preview = False
        self.shown_preview = None

    def _redraw(self, heat: wire.Message, preview: wire.Message | None) -> None:
        changed = False
        if preview is not None and preview.session == heat.session:
            key = (preview.session, preview.seq)
            if key != self.shown_preview:
                jpeg = preview.arrays.get("jpeg")
                rgb = None if jpeg is None else decode_jpeg(jpeg)
                if rgb is not None:
                    shown = preview.localization()
                    self._show_frame(rgb, shown.frame.width, shown.frame.height)
                    self._has_preview = True
                    # the heatmap of the very inference this frame came from, when still at hand
                    matching = self.feed.heatmap_for(preview.session, shown.inference)
                    if matching is not None:
                        heat = matching
                    changed = True
                self.shown_preview = key
            elif self._has_preview:
                return  # same frame: keep the heatmap that matches it
        key = (heat.session, heat.seq)
        if changed or key != self.shown_heat:
            self._show_heatmap(heat)
            self.shown_heat = key
            changed = True
        if changed:
            self.frames_shown += 1

    # --- status ----------------------------------------------------------------------------
    def publisher_alive(self) -> bool:
        last = self.feed.last_any_ns
        return last > 0 and (time.monotonic_ns() - last) / 1e9 < self.config.stale_after

    def status_text(self) -> str:
        cfg = self.config
        now_ns = time.monotonic_ns()
        if self.feed.last_any_ns == 0:
            waited = time.monotonic() - self._started
            return (f"waiting for {cfg.address} [{cfg.stream}] for {waited:.0f} s: is 'soundlens live' "
                    "running?")
        silent = (now_ns - self.feed.last_any_ns) / 1e9
        heat = self.subscriber.latest(self.heat_topic)
        model = heat.localization().model if heat is not None else None
        model_id = model.id if model is not None else "?"
        model_text = (Path(model_id).name if "/" in model_id else model_id) + (
            f" ({model.method})" if model is not None and model.method else "")
        if silent >= cfg.stale_after:
            return (f"publisher lost: no messages from {cfg.address} for {silent:.0f} s; "
                    f"waiting for it to come back | last model {model_text}")
        parts = [f"{self.feed.rate(now_ns):.1f} heatmaps/s"]
        status = self.subscriber.latest(self.status_topic)
        pub = status.header if status is not None and status.session == self.session else None
        latency = self.feed.latency_p50()
        if latency is None and pub is not None:  # another host: the publisher's own capture->publish
            latency = _get(pub, "latency_ms", "capture_to_publish", "p50")
        parts.append("latency " + ("-" if not isinstance(latency, (int, float)) else f"{latency:.0f} ms"))
        lost = self.subscriber.stats.lost  # heatmaps that never reached this viewer (seq gaps)
        # model too slow for the hop
        hops = _get(pub, "counters", "hops_dropped") if pub is not None else None
        drops = lost + (hops if isinstance(hops, int) else 0)
        if pub is not None:  # status fields are informative; a publisher may leave some out
            fps_in = pub.get("fps_in")
            if isinstance(fps_in, (int, float)):
                parts.insert(1, f"in {fps_in:.0f} fps")
        parts.append(f"drops {drops}")
        self.status_label.setToolTip(f"{lost} heatmaps lost in transport, "
                                     f"{hops if isinstance(hops, int) else '?'} hops dropped "
                                     "by the publisher")
        parts.append(f"model {model_text}")
        if time.monotonic() - self._reconnected_at < 5.0 and self._reconnected_at:
            parts.append(f"reconnected: new session {self.session[:8]}")
        if self.held:
            parts.append("HOLD (Space resumes)")
        if not self._has_preview and heat is not None:
            parts.append("no preview frames (start live with --preview)")
        return " | ".join(parts)

    def _update_status(self) -> None:
        text = self.status_text()
        message, until = self._message
        if message and time.monotonic() < until:
            text = f"{text} | {message}"
        self.status_label.setText(text)
        alive = self.publisher_alive()
        if not alive:
            self.banner.setText("publisher lost - waiting" if self.feed.last_any_ns
                                else f"waiting for {self.config.address}")
            self.banner.show()
        elif not self._has_preview:
            self.banner.setText("no preview frames")
            self.banner.show()
        else:
            self.banner.hide()

    # --- actions ---------------------------------------------------------------------------
    def set_held(self, held: bool) -> None:
        self.held = bool(held)
        if self.hold_button.isChecked() != self.held:
            self.hold_button.setChecked(self.held)
        self._update_status()

    def grab_image(self) -> QtGui.QImage:
        """The picture area (frame + heatmap + peaks) as it is on screen."""
        return self.graphics.grab().toImage()

    def frame_to_widget(self, x: float, y: float) -> tuple[int, int]:
        """Frame pixel coordinates -> pixel of `grab_image()`."""
        scene = self.view.mapViewToScene(QtCore.QPointF(x, y))
        point = self.graphics.mapFromScene(scene)
        return point.x(), point.y()

    def save_snapshot(self, path: str | os.PathLike | None = None) -> Path:
        """Save the whole window (picture, controls, status bar) as a PNG; returns its path."""
        if path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = (Path(self.config.snapshot_dir)
                    / f"soundlens-{stamp}-{int(time.time() * 1000) % 1000:03d}.png")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path), "PNG"):
            raise SoundLensError(f"cannot write the snapshot {path}; check that its folder is writable")
        self._message = (f"saved {path}", time.monotonic() + 4.0)
        return path

    @property
    def closed(self) -> bool:
        return self._closed

    def closeEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        if not self._closed:
            if self.screenshot_on_close:
                self.screenshot_saved = self.save_snapshot(self.screenshot_on_close)
            self._closed = True
            self.timer.stop()
            self.subscriber.close()
            if self.on_close is not None:
                self.on_close()
        super().closeEvent(event)


def run_viewer(config: ViewerConfig, *, seconds: float | None = None, screenshot: str | None = None,
               offscreen: bool = False, should_close=None, on_close=None) -> int:
    """Open the viewer and run the Qt event loop until the window closes (or `seconds` pass, or
    `should_close()` says so, or Ctrl-C). `screenshot` saves the window as a PNG as it closes."""
    if not offscreen and not display_available():
        raise SoundLensError(
            "no display to open the viewer on (DISPLAY is unset or Qt cannot open it); run it on a desktop, "
            "under 'xvfb-run -a', or add --screenshot PNG --seconds S to render offscreen"
        )
    app = ensure_app(offscreen=offscreen)
    started = time.monotonic()
    interrupted = threading.Event()

    def close_now() -> bool:
        if interrupted.is_set() or (should_close is not None and should_close()):
            return True
        return seconds is not None and time.monotonic() - started >= seconds

    window = ViewerWindow(config, should_close=close_now, on_close=on_close)
    window.screenshot_on_close = screenshot
    # Ctrl-C / SIGTERM: let the timer close the window (an exception inside a Qt slot would abort).
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    for sig in previous:
        signal.signal(sig, lambda *_: interrupted.set())
    try:
        window.show()
        window.raise_()
        app.exec_()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not window.closed:
            window.close()
    if window.screenshot_saved is not None:
        print(f"soundlens view: saved {window.screenshot_saved}", flush=True)
    return 0
