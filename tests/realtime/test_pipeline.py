"""The pipeline end to end: real files decoded by PyAV, a real PUB socket, a real Subscriber."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rt_helpers import StandInModel, fixture_video, write_test_video
from soundlens.models.errors import SoundLensError
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource, VideoFileConfig, VideoFileSource
from soundlens.realtime.worker import WorkerConfig
from soundlens.training.synth import SceneConfig, SynthVideo

ANY_PORT = "tcp://127.0.0.1:*"


def run_collecting(pipeline: LivePipeline, stop_after: float | None = None) -> tuple[list, Subscriber]:
    """Run the pipeline with a real subscriber that records every valid message it receives."""
    received: list[tuple[wire.Message, int]] = []
    with pipeline:
        sub = Subscriber(pipeline.publisher.address, listener=lambda m, t: received.append((m, t))).start()
        stop = threading.Event()
        if stop_after is not None:
            threading.Timer(stop_after, stop.set).start()
        pipeline.run(stop=stop)
        pipeline.worker.stop()
        time.sleep(0.3)  # let the last messages cross the socket
    sub.close()
    return received, sub


def by_kind(received, kind):
    return [m for m, _ in received if m.kind == kind]


def test_video_file_pipeline_over_a_real_socket():
    source = VideoFileSource(VideoFileConfig(path=str(fixture_video()), realtime=True))
    config = LiveConfig(worker=WorkerConfig(hop=0.1, preview=True),
                        publisher=PublisherConfig(address=ANY_PORT), seconds=2.6, status_interval=0.5)
    received, sub = run_collecting(LivePipeline(StandInModel(), source, source, config, model_id="standin"))
    heatmaps = by_kind(received, "heatmap")
    assert len(heatmaps) >= 12, f"only {len(heatmaps)} heatmaps in 2.6 s at a 0.1 s hop"
    assert sub.stats.malformed == 0 and sub.stats.gaps == 0 and sub.stats.restarts == 0
    seqs = [m.seq for m in heatmaps]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # rises by one, nothing lost
    assert len({m.session for m, _ in received}) == 1
    peaks = {m.header["inference"]: m for m in by_kind(received, "peaks")}
    for m in heatmaps:
        h = m.header
        assert m.arrays["heatmap"].shape == (7, 7) and m.arrays["heatmap"].dtype == np.float32
        assert 0.0 <= m.arrays["heatmap"].min() and m.arrays["heatmap"].max() <= 1.0
        assert (h["frame"]["width"], h["frame"]["height"]) == (320, 240)
        mono = h["mono_ns"]
        assert mono["capture"] <= mono["infer_start"] <= mono["infer_end"] <= mono["publish"]
        assert mono["publish"] - mono["capture"] < 0.5e9
        audio = h["audio"]
        assert audio["sample_rate"] == 16000 and 0 < audio["num_samples"] <= 16000
        # the window ends at the frame's time (within one AAC block when audio was late)
        end_s = (audio["first_sample"] + audio["num_samples"]) / 16000
        assert abs(end_s - h["frame"]["media_s"]) < 0.06
        assert peaks[h["inference"]].header["peaks"] == h["peaks"]
        assert h["heatmap"]["region"] == [0.0, 0.0, 320.0, 240.0]
    assert heatmaps[-1].header["audio"]["num_samples"] == 16000  # a full window once 1 s has passed
    previews = by_kind(received, "preview")
    assert previews and previews[0].arrays["jpeg"][:2].tobytes() == b"\xff\xd8"
    meta = by_kind(received, "meta")[-1].header
    assert meta["frame"] == {"width": 320, "height": 240} and meta["heatmap"]["shape"] == [7, 7]
    assert meta["model"]["id"] == "standin" and meta["sources"][0]["kind"] == "video"
    status = by_kind(received, "status")[-1].header
    assert status["counters"]["inferences"] >= len(heatmaps) - 1
    assert status["counters"]["frames_in"] > 50 and status["latency_ms"]["inference"]["n"] > 0


def test_fast_mode_processes_every_hop_of_the_file_once():
    source = VideoFileSource(VideoFileConfig(path=str(fixture_video("cartoon_720p_opus.mkv")), realtime=False,
                                             max_width=320))
    config = LiveConfig(worker=WorkerConfig(hop=0.25), publisher=PublisherConfig(address=ANY_PORT))
    pipeline = LivePipeline(StandInModel(), source, source, config)
    received, sub = run_collecting(pipeline)  # runs to the end of the file
    times = [m.header["frame"]["media_s"] for m in by_kind(received, "heatmap")]
    media_end = source.stats.frames_in / source.fps  # 7.4 s
    # hop 0 has no audio yet (counted as audio_short); every later hop inside the media, once
    hops = [k * 0.25 for k in range(1, 100) if k * 0.25 < media_end]
    assert len(times) == len(hops) == pipeline.worker.stats.inferences
    for hop, t in zip(hops, times):  # the frame shown at each hop: at or just before it
        assert hop - 1 / source.fps - 1e-6 <= t <= hop + 1e-6
    assert sub.stats.gaps == 0 and pipeline.worker.stats.hops_dropped == 0
    for m in by_kind(received, "heatmap")[4:]:
        audio = m.header["audio"]
        assert audio["num_samples"] == 16000
        assert audio["first_sample"] + audio["num_samples"] == round(m.header["frame"]["media_s"] * 16000)


def test_slow_model_drops_stale_work_and_latency_stays_bounded():
    delay = 0.25
    source = SyntheticSource(SynthVideo(10, fps=25, config=SceneConfig(image_size=64)),
                             SyntheticConfig(realtime=True))
    model = StandInModel(delay=delay)
    config = LiveConfig(worker=WorkerConfig(hop=0.05), publisher=PublisherConfig(address=ANY_PORT),
                        seconds=2.5)
    pipeline = LivePipeline(model, source, source, config)
    received, _ = run_collecting(pipeline)
    stats = pipeline.worker.stats
    assert stats.hops_dropped >= 10, stats  # about 4 hops lost per 0.25 s inference
    assert stats.frames_skipped >= 20, stats  # 25 fps in, about 4/s used
    assert model.calls <= 2.5 / delay + 2  # nothing queued behind the slow model
    ages = [(m.header["mono_ns"]["publish"] - m.header["mono_ns"]["capture"]) / 1e9
            for m in by_kind(received, "heatmap")]
    assert len(ages) >= 5
    assert max(ages) < delay + 0.15, ages  # one inference plus at most a frame period and audio wait
    lat = pipeline.worker.capture_to_infer.summary()
    assert lat["p99"] < 100, lat  # ms: the frame used is always the newest one


def test_worker_gives_the_model_the_frame_before_each_frame():
    # motion input (SIRA's flow): every inference on a 25 fps file gets the frame just before it
    source = SyntheticSource(SynthVideo(2, fps=25, config=SceneConfig(image_size=64)), SyntheticConfig())
    model = StandInModel()
    config = LiveConfig(worker=WorkerConfig(hop=0), publisher=PublisherConfig(address=ANY_PORT))
    pipeline = LivePipeline(model, source, source, config)
    run_collecting(pipeline)
    assert len(model.seen) >= 20
    pairs = list(zip(model.seen, model.seen[1:]))
    with_previous = [(a, b) for a, b in pairs if b[1] is not None]
    assert len(with_previous) >= len(pairs) - 1
    for (frames_before, _), (_, previous) in with_previous:
        np.testing.assert_array_equal(previous, frames_before)


def test_looping_keeps_one_timeline():
    source = SyntheticSource(SynthVideo(0.4, fps=25, config=SceneConfig(image_size=32)),
                             SyntheticConfig(realtime=False, loop=True))
    source.pacer.release()  # no consumer: run free
    with source:
        assert wait_for(lambda: source.passes >= 3)
        frames = source.frames.snapshot()
    steps = np.diff([f.t_ns for f in frames])
    np.testing.assert_allclose(steps, 40_000_000, atol=2)  # 25 fps straight across the loop seams
    assert source.audio.gap_samples == 0 and source.audio.late_samples == 0
    assert source.audio.end >= 3 * 6400


def wait_for(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_video_source_errors_name_the_fix(tmp_path):
    with pytest.raises(SoundLensError, match="not found"):
        VideoFileSource(VideoFileConfig(path=str(tmp_path / "missing.mp4")))
    silent = write_test_video(tmp_path / "silent.mp4")
    with pytest.raises(SoundLensError, match="no audio track; give --mic"):
        VideoFileSource(VideoFileConfig(path=str(silent)))
    assert VideoFileSource(VideoFileConfig(path=str(silent), audio=False)).audio is None
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(SoundLensError, match="cannot read"):
        VideoFileSource(VideoFileConfig(path=str(text)))
