"""Tracks: the tracker on its own, directions through real OpenCV calibrations, and the live pipeline
with the shipped model on a procedural video whose sounding object moves, seen by a real subscriber."""

from __future__ import annotations

import json
import math
import time

import cv2
import numpy as np
import pytest
from soundlens.models.errors import SoundLensError
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.activity import OnScreenReader, audio_activity, level_dbfs
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.result import Peak
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.tracks import CameraModel, Tracker, TrackerConfig, load_intrinsics
from soundlens.realtime.worker import WorkerConfig
from soundlens.training.synth import SceneConfig, SynthVideo

K = np.array([[180.0, 0.0, 118.0], [0.0, 175.0, 106.0], [0.0, 0.0, 1.0]])
DIST = np.array([-0.12, 0.03, 0.001, -0.002, 0.0])


def peak(x, y, score=1.0, w=224, h=224):
    return Peak(x / w, y / h, x, y, score)


# --- the tracker alone ---------------------------------------------------------------------------
def test_a_moving_peak_keeps_one_id_and_its_velocity_is_estimated():
    tracker = Tracker(TrackerConfig(birth_frames=3, death_misses=4))
    seen = []
    for i in range(30):
        t = i * 0.1
        tracks = tracker.update([peak(40 + 30 * t, 100 - 10 * t), peak(200, 30, 0.2)], 224, 224, t)
        seen.append(tracks)
    assert seen[0] == [] and seen[1] == [] and len(seen[2]) == 1  # born on the 3rd consistent frame
    # the weak peak (0.2 < min_score) never is one
    assert {tr.id for tracks in seen[2:] for tr in tracks} == {1}
    last = seen[-1][0]
    assert last.vx == pytest.approx(30, abs=3) and last.vy == pytest.approx(-10, abs=3)
    assert last.u == pytest.approx(last.x / 224) and last.hits == 30 and last.missed == 0
    assert last.age_s == pytest.approx(2.9) and last.azimuth is None  # no camera model: no direction


def test_death_after_m_misses_and_a_new_id_after():
    tracker = Tracker(TrackerConfig(birth_frames=2, death_misses=3))
    for i in range(4):
        tracker.update([peak(100, 100)], 224, 224, i * 0.1)
    for i in range(4, 6):  # two misses: coasting, still there
        tracks = tracker.update([], 224, 224, i * 0.1)
        assert [t.id for t in tracks] == [1] and tracks[0].missed == i - 3
    assert tracker.update([], 224, 224, 0.6) == []  # the third miss ends it
    tracker.update([peak(100, 100)], 224, 224, 0.7)
    assert [t.id for t in tracker.update([peak(100, 100)], 224, 224, 0.8)] == [2]  # ids are never reused


def test_nothing_is_born_from_silence_and_a_jump_beyond_the_gate_is_another_source():
    tracker = Tracker(TrackerConfig(birth_frames=2, death_misses=2, gate=0.1))
    for i in range(10):
        assert tracker.update([peak(100, 100)], 224, 224, i * 0.1, silent=True) == []
    for i in range(10, 13):
        tracks = tracker.update([peak(100, 100)], 224, 224, i * 0.1)
    assert [t.id for t in tracks] == [1]
    tracker.update([peak(200, 200)], 224, 224, 1.3)  # 141 px away, gate 32 px: not the same source
    tracks = tracker.update([peak(200, 200)], 224, 224, 1.4)
    assert sorted(t.id for t in tracks) == [2] and tracks[0].x == pytest.approx(200, abs=1)


def test_two_sources_keep_their_ids_when_scores_swap():
    tracker = Tracker(TrackerConfig(birth_frames=2))
    for i in range(20):
        t = i * 0.1
        a, b = peak(50 + 20 * t, 60), peak(170 - 20 * t, 160)
        scores = (1.0, 0.7) if i % 2 else (0.7, 1.0)  # min-max scores flicker between the two
        tracks = tracker.update([Peak(a.u, a.v, a.x, a.y, scores[0]), Peak(b.u, b.v, b.x, b.y, scores[1])],
                                224, 224, t)
    by_id = {tr.id: tr for tr in tracks}
    assert sorted(by_id) == [1, 2]
    assert by_id[1].y == pytest.approx(60, abs=2) and by_id[2].y == pytest.approx(160, abs=2)


def test_bad_tracker_settings_are_one_clear_error():
    with pytest.raises(SoundLensError, match="--track-gate"):
        TrackerConfig(gate=0).check()
    with pytest.raises(SoundLensError, match="--track-birth"):
        TrackerConfig(birth_frames=0).check()
    with pytest.raises(SoundLensError, match="--hfov"):
        CameraModel.from_hfov(180)


# --- directions ----------------------------------------------------------------------------------
def write_opencv_yaml(path, k=K, dist=DIST, size=(224, 224)):
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", size[0])
    fs.write("image_height", size[1])
    fs.write("camera_matrix", k)
    fs.write("distortion_coefficients", dist.reshape(1, -1))
    fs.release()
    return path


def project(azimuth_deg, elevation_deg, k=K, dist=DIST):
    """The pixel where a ray at (azimuth, elevation) lands, through OpenCV's forward camera model."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    ray = np.array([[math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az)]])
    pixels, _ = cv2.projectPoints(ray, np.zeros(3), np.zeros(3), k, dist)
    return pixels.reshape(2)


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".xml"])
def test_intrinsics_files_invert_opencv_projection(tmp_path, suffix):
    path = tmp_path / f"calib{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"camera_matrix": {"rows": 3, "cols": 3, "data": K.ravel().tolist()},
                                    "distortion_coefficients": DIST.tolist(), "image_width": 224,
                                    "image_height": 224}))
    else:
        write_opencv_yaml(path)
    camera = load_intrinsics(path)
    angles = [(0, 0), (20, 0), (-25, 10), (15, -20), (-30, -25)]
    pixels = np.array([project(a, e) for a, e in angles])
    np.testing.assert_allclose(camera.directions(pixels, 224, 224), angles, atol=0.05)
    # The same camera delivering 448x448 frames: the calibration is scaled, the angles stay.
    np.testing.assert_allclose(camera.directions(pixels * 2, 448, 448), angles, atol=0.05)


def test_hfov_pinhole_directions():
    camera = CameraModel.from_hfov(90)
    np.testing.assert_allclose(camera.directions([[320, 240], [640, 240], [0, 240]], 640, 480),
                               [[0, 0], [45, 0], [-45, 0]], atol=1e-9)
    el = camera.directions([[320, 0]], 640, 480)[0, 1]
    assert el == pytest.approx(math.degrees(math.atan(240 / 320)))  # up is positive


def test_bad_intrinsics_files_name_the_fix(tmp_path):
    with pytest.raises(SoundLensError, match="not found.*--hfov"):
        load_intrinsics(tmp_path / "missing.yaml")
    (tmp_path / "a.json").write_text('{"distortion_coefficients": [0, 0, 0, 0]}')
    with pytest.raises(SoundLensError, match="no camera_matrix"):
        load_intrinsics(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"camera_matrix": [[1, 0], [0, 1]]}')
    with pytest.raises(SoundLensError, match="3x3"):
        load_intrinsics(tmp_path / "b.json")
    (tmp_path / "c.yaml").write_text("%YAML:1.0\n---\ncamera_matrix: [[[\n")
    with pytest.raises(SoundLensError, match="intrinsics"):
        load_intrinsics(tmp_path / "c.yaml")


# --- activity and on_screen ----------------------------------------------------------------------
def test_activity_levels():
    sine = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    assert level_dbfs(sine) == pytest.approx(-3.01, abs=0.01)
    assert level_dbfs(np.zeros(100)) == -120.0 and level_dbfs(np.zeros(0)) == -120.0
    quiet = audio_activity(sine * 10 ** (-60 / 20), silence_db=-50)
    assert quiet.silent and quiet.dbfs == pytest.approx(-63.01, abs=0.01)
    assert not audio_activity(sine, -50).silent


def test_on_screen_reader_follows_the_methods_map():
    from soundlens import models

    ezvsl = models.create("ezvsl", encoder="lite")
    reader = OnScreenReader.for_model(ezvsl)
    assert reader.threshold == 0.5 and reader(0.6 / ezvsl.config.tau).similarity == pytest.approx(0.6)
    lvs = OnScreenReader.for_model(models.create("lvs", encoder="lite"))
    assert lvs.threshold == 0.65 and not lvs(0.6).visible and lvs(0.7).visible
    assert OnScreenReader.for_model(models.create("jsa", encoder="lite")) is None  # its map is no similarity


# --- end to end ----------------------------------------------------------------------------------
def one_moving_object(seconds, seed, image_size, fps):
    """A procedural clip with a single object drifting at 45-65 px/s, sounding the whole time."""
    config = SceneConfig(image_size=image_size, min_objects=1, max_objects=1, scale=(0.2, 0.25))
    return SynthVideo(seconds, seed=seed, config=config, fps=fps, segment=(seconds, seconds), gap_prob=0.0,
                      speed=(0.2, 0.3))


class SilentClip:
    """The same procedural clip with its sound removed: what a scene with nothing sounding looks like."""

    def __init__(self, video):
        self._video = video

    def __getattr__(self, name):
        return getattr(self._video, name)

    def audio(self, start=0.0, stop=None):
        return np.zeros_like(self._video.audio(start, stop))


def run_tracks(model, make_video, tmp_path, seconds=6.0, **worker):
    source = SyntheticSource(make_video(seconds, 3, 224, 25.0), SyntheticConfig(realtime=False))
    config = LiveConfig(worker=WorkerConfig(hop=0.1, device="cpu", **worker),
                        publisher=PublisherConfig(address=f"ipc://{tmp_path}/tracks.sock", queue=64))
    received = []
    with LivePipeline(model, source, source, config, model_id="default") as pipeline:
        sub = Subscriber(pipeline.publisher.address, listener=lambda m, t: received.append(m)).start()
        time.sleep(0.3)  # slow joiner: the lock-step source waits for nobody
        pipeline.run()
        pipeline.worker.stop()
        time.sleep(0.5)
        sub.close()
    assert sub.stats.malformed == 0 and pipeline.publisher.dropped == 0
    return source, [m for m in received if m.kind == "tracks"], received


def test_a_moving_sounding_object_is_one_track_with_its_direction(trained_lite_model, tmp_path):
    calibration = write_opencv_yaml(tmp_path / "camera.yaml")
    camera = load_intrinsics(calibration)
    source, tracks_msgs, received = run_tracks(trained_lite_model, one_moving_object, tmp_path, camera=camera)
    assert len(tracks_msgs) >= 50
    heatmaps = {m.header["inference"]: m for m in received if m.kind == "heatmap"}
    ids, errors, travelled = set(), [], []
    for msg in tracks_msgs:
        h = msg.header
        assert h["camera"] == "intrinsics camera.yaml" and h["version"] == [1, wire.MINOR]
        assert h["activity"] == heatmaps[h["inference"]].header["activity"] and not h["activity"]["silent"]
        assert 0 <= h["on_screen"]["similarity"] <= 1  # EZ-VSL: a cosine similarity
        t = h["frame"]["media_s"]
        if t < 1.0 or not h["tracks"]:  # start-up: birth takes 3 heatmaps, the audio window fills
            continue
        best = wire.decode_tracks(msg)[0]
        ids.add(best.id)
        truth = source.video.truth(int(round(t * source.fps)))
        x0, y0, x1, y1 = truth["box"]
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        travelled.append(centre)
        # The direction is the track's pixel through the calibration...
        np.testing.assert_allclose([best.azimuth, best.elevation],
                                   camera.directions([[best.x, best.y]], 224, 224)[0], atol=1e-4)
        # ... and points at the sounding object: within its angular extent, widened by half a
        # heatmap cell (224 px / 7 cells), the model's own resolution.
        corners = camera.directions([[x0 - 16, y0 - 16], [x1 + 16, y1 + 16]], 224, 224)
        half = np.abs(corners[1] - corners[0]) / 2
        expected = camera.directions([centre], 224, 224)[0]
        errors.append(np.abs(np.array([best.azimuth, best.elevation]) - expected) / half)
    assert len(errors) >= 40, "the object was tracked in too few heatmaps"
    assert ids == {1}, f"the track of the one sounding object changed id: {sorted(ids)}"
    assert np.linalg.norm(travelled[-1] - travelled[0]) > 100  # it really moved
    assert np.percentile(np.max(errors, axis=1), 90) <= 1.0, "direction outside the object's extent"


def test_no_track_is_born_from_silence(trained_lite_model, tmp_path):
    _, tracks_msgs, _ = run_tracks(trained_lite_model, lambda *a: SilentClip(one_moving_object(*a)), tmp_path,
                                   seconds=3.0, camera=CameraModel.from_hfov(70))
    assert len(tracks_msgs) >= 20
    assert all(m.header["activity"]["silent"] and m.header["activity"]["dbfs"] == -120.0 for m in tracks_msgs)
    assert all(m.header["tracks"] == [] and m.header["peaks"] for m in tracks_msgs)  # peaks, but no tracks


def test_tracks_travel_the_wire_and_bad_ones_are_refused():
    from soundlens.realtime.activity import Activity, OnScreen
    from soundlens.realtime.result import AudioWindow, FrameInfo, ModelInfo, Timing, make_localization

    heat = np.zeros((7, 7), np.float32)
    heat[2, 3] = 1.0
    loc = make_localization(heat, FrameInfo(5, 224, 224, 0.2), AudioWindow(16000, 0, 16000),
                            Timing(1, 2, 3, 4), inference=5, model=ModelInfo("m", "ezvsl"),
                            activity=Activity(-20.5, False, -50.0), on_screen=OnScreen(0.71, True, 0.5))
    tracker = Tracker(TrackerConfig(birth_frames=1), CameraModel.from_hfov(90))
    tracks = tracker.update(loc.peaks, 224, 224, 0.2)
    header = {**wire.tracks_header(loc, tracks, "hfov 90"), "session": "s", "seq": 0, "stream": "cam0"}
    header["mono_ns"]["publish"] = 5
    msg = wire.decode(wire.encode("tracks", "cam0", header))
    assert msg.topic == "soundlens.v1.tracks.cam0" and msg.header["camera"] == "hfov 90"
    (back,) = wire.decode_tracks(msg)
    assert (back.id == 1 and back.x == pytest.approx(tracks[0].x)
            and back.azimuth == pytest.approx(tracks[0].azimuth))
    again = msg.localization()
    assert again.activity == Activity(-20.5, False, -50.0) and again.on_screen == OnScreen(0.71, True, 0.5)
    for bad, why in (({"id": 0}, "below 1"), ({"x": "1"}, "type str"),
                     ({"azimuth": float("inf")}, "not finite")):
        parts = wire.encode("tracks", "cam0", header)
        broken = json.loads(parts[1])
        broken["tracks"][0].update(bad)
        with pytest.raises(wire.WireError, match=why):
            wire.decode([parts[0], json.dumps(broken).encode()])
