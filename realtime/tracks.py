"""Peaks associated across frames into tracks with stable ids and directions (`soundlens.v1.tracks`).

Pure numpy/scipy/OpenCV, no threads and no I/O besides reading a calibration file, so the tracker
is tested on its own and a subscriber could run it on recorded peaks. Per update:

1. every track's constant-velocity Kalman filter (state x, y, vx, vy in frame pixels) predicts to
   the new time;
2. peaks scoring at least `min_score` are assigned to predictions by `linear_sum_assignment` on
   the Euclidean distance, pairs farther apart than the gate never (gated assignment);
3. assigned tracks are corrected; a peak nobody took starts a *tentative* track;
4. a tentative track is *born* (gets the next integer id) once it was assigned in `birth_frames`
   consecutive updates, and is forgotten at its first miss; a born track coasts on its prediction
   through misses and *dies* after `death_misses` consecutive ones.

A silent window (`silent=True`) offers no peaks at all: nothing is born from silence, and tracks
coast, then die, while nothing is heard. Lengths are fractions of the frame diagonal, so one
configuration fits every resolution.

Directions come from a `CameraModel`: the camera matrix and distortion of an OpenCV calibration
(`cv2.undistortPoints`) or a pinhole with a horizontal field of view.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from soundlens.models.errors import SoundLensError


@dataclass(frozen=True)
class TrackerConfig:
    birth_frames: int = 3  # consecutive assigned updates before a tentative track gets an id
    death_misses: int = 5  # consecutive missed updates after which a track is dropped
    gate: float = 0.15  # farthest a peak may be from a track's prediction, fraction of the frame diagonal
    min_score: float = 0.5  # peaks below this (min-max score of their map) are not evidence
    max_tracks: int = 8  # tentative + born; peaks beyond it are ignored
    # measurement noise of a peak, fraction of the diagonal (about a third of a 7x7 cell)
    position_std: float = 0.03
    accel_std: float = 0.5  # process noise: unmodelled acceleration, diagonals / s^2
    score_smoothing: float = 0.3  # weight of the newest peak score in the track's score (a miss counts 0)

    def check(self) -> TrackerConfig:
        if self.birth_frames < 1 or self.death_misses < 1:
            raise SoundLensError(f"--track-birth and --track-death must be >= 1 (got {self.birth_frames}, "
                                 f"{self.death_misses})")
        if not 0 < self.gate <= 1:
            raise SoundLensError("--track-gate is a fraction of the frame diagonal in (0, 1], "
                                 f"got {self.gate}")
        if not 0 <= self.min_score <= 1:
            raise SoundLensError(f"--track-min-score must be in [0, 1], got {self.min_score}")
        if self.max_tracks < 1:
            raise SoundLensError(f"max_tracks must be >= 1, got {self.max_tracks}")
        return self

    def describe(self) -> dict:
        return {"birth_frames": self.birth_frames, "death_misses": self.death_misses, "gate": self.gate,
                "min_score": self.min_score}


# --- directions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraModel:
    """Camera intrinsics at calibration size (`size` = (width, height), None: any frame size), or
    a pinhole with horizontal field of view `hfov_deg` centred on the frame."""

    matrix: np.ndarray | None = None  # 3x3 K
    distortion: np.ndarray | None = None  # OpenCV's (k1, k2, p1, p2[, k3, ...])
    size: tuple[int, int] | None = None
    hfov_deg: float | None = None
    source: str = ""  # what the user gave, for meta: "intrinsics FILE" or "hfov 90"

    @classmethod
    def from_hfov(cls, hfov_deg: float) -> CameraModel:
        if not 0 < hfov_deg < 180:
            raise SoundLensError("--hfov is the horizontal field of view in degrees, 0 < hfov < "
                                 f"180; got {hfov_deg}")
        return cls(hfov_deg=float(hfov_deg), source=f"hfov {hfov_deg:g}")

    def intrinsics(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(K, distortion) for a width x height frame: a calibration made at another size is scaled
        (a resized stream of the same camera and lens)."""
        if self.hfov_deg is not None:
            f = (width / 2) / math.tan(math.radians(self.hfov_deg) / 2)
            return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], float), np.zeros(4)
        k = np.array(self.matrix, float)
        if self.size is not None and tuple(self.size) != (width, height):
            sx, sy = width / self.size[0], height / self.size[1]
            k = np.diag([sx, sy, 1.0]) @ k
        return k, np.asarray(self.distortion if self.distortion is not None else np.zeros(4), float)

    def directions(self, xy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Pixels [N, 2] -> [N, 2] (azimuth, elevation) in degrees, camera frame: azimuth positive
        to the right of the optical axis, elevation positive above it."""
        import cv2  # cv2 only with a camera model: the light client decodes tracks without it

        xy = np.asarray(xy, np.float64).reshape(-1, 1, 2)
        if xy.size == 0:
            return np.zeros((0, 2))
        k, dist = self.intrinsics(width, height)
        # Normalised image coordinates (the ray through the pixel is (xn, yn, 1)), lens distortion removed.
        norm = cv2.undistortPoints(xy, k, dist).reshape(-1, 2)
        xn, yn = norm[:, 0], norm[:, 1]
        azimuth = np.degrees(np.arctan2(xn, 1.0))
        elevation = np.degrees(np.arctan2(-yn, np.hypot(xn, 1.0)))
        return np.stack([azimuth, elevation], 1)


def _matrix(value, name: str, path: Path) -> np.ndarray:
    """A matrix as a nested list, a flat list, or OpenCV's {"rows", "cols", "data"} object."""
    if isinstance(value, dict) and "data" in value:
        value = value["data"]
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SoundLensError(f"{path}: '{name}' is not a list of numbers") from None
    if not np.all(np.isfinite(array)):
        raise SoundLensError(f"{path}: '{name}' holds non-finite numbers")
    return array


MATRIX_KEYS = ("camera_matrix", "cameraMatrix", "K")
DIST_KEYS = ("distortion_coefficients", "dist_coeffs", "distCoeffs", "distortion", "D")


def _node_value(node):
    """A cv2.FileNode as an array (an !!opencv-matrix map or a sequence, nested or flat), a number, or
    None."""
    if node.empty() or node.isNone():
        return None
    if node.isMap():
        return node.mat()
    if node.isSeq():
        return [_node_value(node.at(i)) for i in range(node.size())]
    if node.isInt() or node.isReal():
        return node.real()
    return node.string()


def load_intrinsics(path: str | Path) -> CameraModel:
    """An OpenCV calibration file: YAML/XML as written by cv2.FileStorage (calibration.cpp's
    `camera_matrix`, `distortion_coefficients`, `image_width`, `image_height`) or JSON with the same
    keys (matrices as nested lists or {rows, cols, data})."""
    import cv2  # cv2 only to read a calibration file

    path = Path(path)
    if not path.is_file():
        raise SoundLensError(f"--intrinsics: {path} not found; give the camera calibration (OpenCV YAML or "
                             "JSON with camera_matrix and distortion_coefficients), or --hfov DEG instead")
    fields: dict = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SoundLensError(f"--intrinsics: {path} is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise SoundLensError(f"--intrinsics: {path} must hold a JSON object with camera_matrix")
        fields = data
    else:
        try:
            fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
            try:
                for key in (*MATRIX_KEYS, *DIST_KEYS, "image_width", "image_height"):
                    value = _node_value(fs.getNode(key))
                    if value is not None:
                        fields[key] = value
            finally:
                fs.release()
        except (cv2.error, SystemError) as err:  # a parse error surfaces as either, by OpenCV version
            detail = getattr(err, "msg", None) or str(err.__cause__ or err)
            raise SoundLensError(f"--intrinsics: OpenCV cannot read {path} ({detail.strip()}); "
                                 "it expects a cv2.FileStorage YAML/XML or a .json file") from None
    matrix = next((fields[k] for k in MATRIX_KEYS if fields.get(k) is not None), None)
    if matrix is None:
        raise SoundLensError(f"--intrinsics: {path} has no camera_matrix (3x3); OpenCV's calibration writes "
                             "one")
    k = _matrix(matrix, "camera_matrix", path)
    if k.size != 9:
        raise SoundLensError(f"--intrinsics: {path}: camera_matrix has {k.size} numbers, a 3x3 matrix has 9")
    k = k.reshape(3, 3)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise SoundLensError(f"--intrinsics: {path}: camera_matrix focal lengths fx, fy must be > 0")
    dist_value = next((fields[k_] for k_ in DIST_KEYS if fields.get(k_) is not None), None)
    dist = (np.zeros(4) if dist_value is None
            else _matrix(dist_value, "distortion_coefficients", path).reshape(-1))
    if dist.size not in (4, 5, 8, 12, 14):
        raise SoundLensError(f"--intrinsics: {path}: {dist.size} distortion coefficients; OpenCV "
                             "takes 4, 5, 8, 12 or 14")
    size = None
    width, height = fields.get("image_width"), fields.get("image_height")
    if width is not None and height is not None:
        try:
            size = (int(width), int(height))
        except (TypeError, ValueError):
            raise SoundLensError(f"--intrinsics: {path}: image_width/image_height are not integers") from None
        if size[0] <= 0 or size[1] <= 0:
            raise SoundLensError(f"--intrinsics: {path}: image size {size} must be positive")
    return CameraModel(matrix=k, distortion=dist, size=size, source=f"intrinsics {path.name}")


# --- tracks ------------------------------------------------------------------------------------
@dataclass
class _Track:
    state: np.ndarray  # x, y, vx, vy (pixels, pixels / s)
    cov: np.ndarray  # 4x4
    born_t: float
    score: float
    id: int | None = None  # None while tentative
    hits: int = 1  # assigned updates
    missed: int = 0  # consecutive misses


@dataclass(frozen=True)
class Track:
    """One born track after an update, as published (docs/protocol.md §4.5)."""

    id: int
    x: float
    y: float
    u: float
    v: float
    vx: float  # pixels / s
    vy: float
    vu: float  # frame widths / s
    vv: float  # frame heights / s
    score: float
    age_s: float
    hits: int
    missed: int  # consecutive updates without a peak (0: seen in this one)
    azimuth: float | None = None  # degrees, None without a camera model
    elevation: float | None = None

    def to_json(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Tracker:
    config: TrackerConfig = field(default_factory=TrackerConfig)
    camera: CameraModel | None = None
    next_id: int = 1  # ids count from 1 and are never reused within a run
    _tracks: list[_Track] = field(default_factory=list)
    _t: float | None = None

    def update(self, peaks, width: int, height: int, t: float, silent: bool = False) -> list[Track]:
        """Advance to time `t` (seconds, any origin, increasing) with this frame's `peaks` (objects
        with x, y, score in pixels of a width x height frame); returns the born tracks."""
        cfg = self.config
        diag = math.hypot(width, height)
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        for track in self._tracks:
            self._predict(track, dt, diag)
        points = [] if silent else [(float(p.x), float(p.y), float(p.score)) for p in peaks
                                    if float(p.score) >= cfg.min_score]
        assigned = self._assign(points, cfg.gate * diag)
        r = (cfg.position_std * diag) ** 2
        taken = set()
        for ti, pi in assigned:
            track, (x, y, score) = self._tracks[ti], points[pi]
            self._correct(track, np.array([x, y]), r)
            track.hits += 1
            track.missed = 0
            track.score += cfg.score_smoothing * (score - track.score)
            taken.add(ti)
        survivors = []
        for ti, track in enumerate(self._tracks):
            if ti not in taken:
                track.missed += 1
                track.score -= cfg.score_smoothing * track.score
                if track.id is None or track.missed >= cfg.death_misses:
                    continue  # tentative tracks need consecutive frames; born ones die after M misses
            if track.id is None and track.hits >= cfg.birth_frames:
                track.id = self.next_id
                self.next_id += 1
            survivors.append(track)
        used = {pi for _, pi in assigned}
        for pi, (x, y, score) in enumerate(points):
            if pi in used or len(survivors) >= cfg.max_tracks:
                continue
            cov = np.diag([r, r, (0.5 * diag) ** 2, (0.5 * diag) ** 2])  # velocity unknown at first sight
            fresh = _Track(np.array([x, y, 0.0, 0.0]), cov, t, score)
            if cfg.birth_frames <= 1:
                fresh.id = self.next_id
                self.next_id += 1
            survivors.append(fresh)
        self._tracks = survivors
        return self.born(width, height)

    def born(self, width: int, height: int) -> list[Track]:
        """The born tracks now, best score first."""
        live = [tr for tr in self._tracks if tr.id is not None]
        live.sort(key=lambda tr: (-tr.score, tr.id))
        xy = np.array([tr.state[:2] for tr in live]).reshape(-1, 2)
        angles = self.camera.directions(xy, width, height) if self.camera is not None and live else None
        out = []
        for i, tr in enumerate(live):
            x, y, vx, vy = (float(v) for v in tr.state)
            az, el = (float(angles[i, 0]), float(angles[i, 1])) if angles is not None else (None, None)
            out.append(Track(tr.id, x, y, x / width, y / height, vx, vy, vx / width, vy / height,
                             max(0.0, tr.score), max(0.0, (self._t or 0.0) - tr.born_t), tr.hits, tr.missed,
                             az, el))
        return out

    def _assign(self, points, gate_px: float) -> list[tuple[int, int]]:
        if not self._tracks or not points:
            return []
        from scipy.optimize import linear_sum_assignment  # scipy only once there are tracks to match

        pred = np.array([tr.state[:2] for tr in self._tracks])
        obs = np.array([p[:2] for p in points])
        dist = np.linalg.norm(pred[:, None, :] - obs[None, :, :], axis=2)
        # Born tracks first: a tentative track never takes a peak a born one could have.
        cost = dist + np.array([0.0 if tr.id is not None else gate_px for tr in self._tracks])[:, None]
        cost = np.where(dist <= gate_px, cost, 1e9)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if dist[r, c] <= gate_px]

    def _predict(self, track: _Track, dt: float, diag: float) -> None:
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q_a = (self.config.accel_std * diag) ** 2
        # White-noise acceleration (discretised): position and velocity uncertainty grow with dt.
        g = np.array([[dt * dt / 2, 0], [0, dt * dt / 2], [dt, 0], [0, dt]])
        track.state = f @ track.state
        track.cov = f @ track.cov @ f.T + q_a * (g @ g.T)

    @staticmethod
    def _correct(track: _Track, z: np.ndarray, r: float) -> None:
        h = np.zeros((2, 4))
        h[0, 0] = h[1, 1] = 1.0
        s = h @ track.cov @ h.T + r * np.eye(2)
        gain = track.cov @ h.T @ np.linalg.inv(s)
        track.state = track.state + gain @ (z - h @ track.state)
        track.cov = (np.eye(4) - gain @ h) @ track.cov

    def reset(self) -> None:
        self._tracks.clear()
        self._t = None
