"""docs/protocol.md §4-§5 on the real pipeline: axis orders on a non-square frame, previews,
skipped hops per message, and the averaging window of the status rates."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image
from rt_helpers import StandInModel, _ImagePreset
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.stats import Rate
from soundlens.realtime.worker import PreviewBudget, WorkerConfig, preview_size
from soundlens.training.synth import SceneConfig, SynthVideo

ANY_PORT = "tcp://127.0.0.1:*"
WIDTH, HEIGHT = 320, 180
MAP_H, MAP_W = 4, 8  # rows, columns: differ, so any swapped axis shows
SPOT = (250, 30)  # x, y of a bright patch: cell row 0 (30 / 45), column 6 (250 / 40)


class SpotVideo:
    """A 320x180 scene (the video contract of SyntheticSource): black with one bright
    10x10 patch centred on SPOT, and noise for audio."""

    fps, width, height, sample_rate = 25.0, WIDTH, HEIGHT, 16000

    def __init__(self, seconds):
        self.n_frames = int(seconds * self.fps)

    def audio(self):
        return np.random.default_rng(0).normal(
            0, 0.1, int(self.n_frames / self.fps * self.sample_rate)).astype(np.float32)

    def frame(self, i):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        x, y = SPOT
        image[y - 5:y + 5, x - 5:x + 5] = 255
        return image

    def truth(self, i):
        return {}


class GridModel(StandInModel):
    """StandInModel with a 4-row, 8-column map of the frame's brightness (squashed, or cropped)."""

    def __init__(self, resize: str = "square"):
        super().__init__()
        self.image_preset = _ImagePreset(size=64, resize=resize)

    def prepare(self, frames, waveforms, sample_rate):
        frames = np.asarray(frames)
        if self.image_preset.resize == "short_side":  # centre square, as the real presets crop
            side = min(frames.shape[1:3])
            y0, x0 = (frames.shape[1] - side) // 2, (frames.shape[2] - side) // 2
            frames = frames[:, y0:y0 + side, x0:x0 + side]
        return super().prepare(np.ascontiguousarray(frames), waveforms, sample_rate)

    def heatmap(self, images, specs):
        energy = specs.flatten(1).square().mean(1).sqrt()
        return (F.adaptive_avg_pool2d(images.mean(1, keepdim=True), (MAP_H, MAP_W))[:, 0]
                * energy[:, None, None])


def collect(model, seconds=2.0, **worker) -> tuple[list[wire.Message], LivePipeline]:
    """Run the pipeline on SpotVideo; every message a real Subscriber received (multipart and latest)."""
    source = SyntheticSource(SpotVideo(10), SyntheticConfig(realtime=True))
    config = LiveConfig(worker=WorkerConfig(**{"hop": 0.1, **worker}),
                        publisher=PublisherConfig(address=ANY_PORT), seconds=seconds)
    received: list[wire.Message] = []
    pipeline = LivePipeline(model, source, source, config)
    with pipeline:
        topics = (wire.TOPIC_ROOT, wire.LATEST_ROOT)
        sub = Subscriber(pipeline.publisher.address, topics=topics,
                         listener=lambda m, t: received.append(m)).start()
        pipeline.run()
        pipeline.worker.stop()
        time.sleep(0.3)
    sub.close()
    assert sub.stats.malformed == 0, list(sub.errors)
    return received, pipeline


def kinds(received, kind, latest=False):
    return [m for m in received if m.kind == kind and m.latest == latest]


def test_non_square_frame_every_axis_order():
    received, _ = collect(GridModel("square"), preview=True, preview_width=160)
    heat = kinds(received, "heatmap")[-1]
    # buffer shape is [h, w] (rows, columns), row 0 at the top
    assert (heat.header["buffers"][0]["shape"] == [MAP_H, MAP_W]
            and heat.arrays["heatmap"].shape == (MAP_H, MAP_W))
    # row of y, column of x
    assert np.unravel_index(np.argmax(heat.arrays["heatmap"]), (MAP_H, MAP_W)) == (0, 6)
    assert heat.header["frame"]["width"] == WIDTH and heat.header["frame"]["height"] == HEIGHT
    assert heat.header["heatmap"]["region"] == [0.0, 0.0, WIDTH, HEIGHT]  # x0, y0, x1, y1
    meta = kinds(received, "meta")[-1].header
    assert meta["frame"] == {"width": WIDTH, "height": HEIGHT}
    assert meta["heatmap"]["shape"] == [MAP_H, MAP_W]
    assert meta["heatmap"]["cell_size"] == [WIDTH / MAP_W, HEIGHT / MAP_H] == [40.0, 45.0]  # [cw, ch]
    assert meta["heatmap"]["region"] == [0.0, 0.0, WIDTH, HEIGHT]
    # the peak lies in the spot's cell: x in columns' pixels, y in rows' (§5's formula)
    peak = heat.header["peaks"][0]
    cw, ch = meta["heatmap"]["cell_size"]
    assert 6 * cw <= peak["x"] < 7 * cw and 0 <= peak["y"] < ch
    assert peak["x"] == pytest.approx(peak["u"] * WIDTH) and peak["y"] == pytest.approx(peak["v"] * HEIGHT)
    # sub-cell moves towards the spot
    assert abs(peak["x"] - SPOT[0]) < cw / 2 and abs(peak["y"] - SPOT[1]) < ch
    # the latest form: the same map as rows of numbers
    latest = {m.seq: m for m in kinds(received, "heatmap", latest=True)}
    assert latest, "no latest heatmap arrived"
    seq, copy = next(iter(latest.items()))
    original = next(m for m in kinds(received, "heatmap") if m.seq == seq)
    assert len(copy.header["heatmap"]["data"]) == MAP_H and len(copy.header["heatmap"]["data"][0]) == MAP_W
    np.testing.assert_array_equal(copy.arrays["heatmap"], original.arrays["heatmap"])
    assert copy.header["peaks"] == original.header["peaks"]
    # preview: scaled to 160 wide keeping the aspect ratio; peaks map with u * width, v * height
    preview = kinds(received, "preview")[-1]
    image = Image.open(io.BytesIO(preview.arrays["jpeg"].tobytes()))
    assert image.size == (160, 90) and preview.header["preview"] == {"width": 160, "height": 90}
    pixels = np.asarray(image.convert("L"))
    assert pixels[SPOT[1] // 2, SPOT[0] // 2] > 128  # the spot, at half the frame's coordinates
    p = preview.header["peaks"][0]
    px, py = p["u"] * image.size[0], p["v"] * image.size[1]
    assert (int(py // (90 / MAP_H)), int(px // (160 / MAP_W))) == (0, 6)  # in the spot's cell on the preview


def test_non_square_frame_with_a_cropping_preset():
    received, _ = collect(GridModel("short_side"), seconds=1.5)
    meta = kinds(received, "meta")[-1].header
    side = HEIGHT
    x0 = (WIDTH - side) / 2
    assert meta["heatmap"]["region"] == [x0, 0.0, x0 + side, side]  # a centred square
    assert meta["heatmap"]["cell_size"] == [side / MAP_W, side / MAP_H]  # [cw, ch] = [22.5, 45]
    peak = kinds(received, "peaks")[-1].header["peaks"][0]
    cw, ch = meta["heatmap"]["cell_size"]
    # the spot straddles the crop's right edge (x 250): the last column, a border, so no x refinement
    assert peak["x"] == x0 + (MAP_W - 1 + 0.5) * cw and 0 <= peak["y"] < ch


def test_preview_size_keeps_the_aspect_ratio():
    assert preview_size(1280, 720, 320) == (320, 180)
    assert preview_size(640, 480, 320) == (320, 240)
    assert preview_size(333, 100, 320) == (320, 96)  # 96.09 rounded
    assert preview_size(200, 150, 320) == (200, 150)  # never upscaled


def test_preview_budget_serves_every_jittered_inference_up_to_its_rate():
    rng = np.random.default_rng(0)
    at_rate = np.cumsum(0.1 + rng.uniform(-0.015, 0.015, 300)) * 1e9  # 10 Hz with +-15 ms jitter
    budget = PreviewBudget(10.0)
    assert all(budget.take(int(t)) for t in at_rate)
    budget = PreviewBudget(10.0)
    twice = [budget.take(int(t)) for t in np.arange(300) * (1e9 / 30)]  # 30 inferences/s
    assert sum(twice) == pytest.approx(100, abs=2)


def test_every_inference_carries_a_preview_at_the_default_rates():
    received, _ = collect(GridModel(), seconds=2.5, preview=True)
    heatmaps = {m.header["inference"] for m in kinds(received, "heatmap")}
    previews = {m.header["inference"] for m in kinds(received, "preview")}
    assert len(heatmaps) >= 15
    assert previews == heatmaps


def test_skipped_hops_and_frames_are_in_each_message():
    source = SyntheticSource(SynthVideo(10, fps=25, config=SceneConfig(image_size=64)),
                             SyntheticConfig(realtime=True))
    config = LiveConfig(worker=WorkerConfig(hop=0.05), publisher=PublisherConfig(address=ANY_PORT),
                        seconds=2.5)
    received: list[wire.Message] = []
    pipeline = LivePipeline(StandInModel(delay=0.25), source, source, config)
    with pipeline:
        sub = Subscriber(pipeline.publisher.address, topics=(wire.topic("peaks", "cam0"),),
                         listener=lambda m, t: received.append(m)).start()
        pipeline.run()
        pipeline.worker.stop()
        time.sleep(0.3)
    sub.close()
    assert len(received) >= 5 and sub.stats.gaps == 0  # seq has no gap: nothing was lost in transport
    for before, after in zip(received, received[1:]):
        assert after.seq == before.seq + 1 and after.header["inference"] == before.header["inference"] + 1
        skipped = after.header["frame"]["index"] - before.header["frame"]["index"] - 1
        assert after.header["frames_skipped"] == skipped
        assert after.header["hops_skipped"] >= 2  # a 0.25 s model at 0.05 s hops lets ~4 go
    counters = pipeline.last_status["counters"]
    assert sum(m.header["hops_skipped"] for m in received) <= counters["hops_dropped"]


def test_status_rates_average_over_the_documented_window():
    rate = Rate(window=5.0)
    rate.start(0, now=0.0)
    assert rate.rate(1000, now=1.0) == 1000 and rate.span == 1.0  # the first seconds: since start
    for t in range(2, 12):
        value = rate.rate(1000 * t + (500 if t % 2 else 0), now=float(t))  # uneven blocks
    assert rate.span == 5.0 and value == pytest.approx((11500 - 6000) / 5.0)
    received, pipeline = collect(GridModel(), seconds=3.2)
    status = pipeline.last_status
    assert 3.0 <= status["rates_window_s"] <= 3.5  # younger than 5 s: since start
    uptime = status["uptime_s"]
    assert status["audio_in_hz"] == pytest.approx(status["counters"]["samples_in"] / uptime, rel=0.05)
    assert status["counters"]["published_latest"] > 0
