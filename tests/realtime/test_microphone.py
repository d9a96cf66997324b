"""Real microphone capture: PortAudio (sounddevice) recording from a virtual PulseAudio source.

The fixture starts a private PulseAudio daemon (its own socket and state under tmp) whose
default source is a pipe: what the test writes into the FIFO, paced at real time, is what
PortAudio records. Needs root and the Debian packages pulseaudio, pulseaudio-utils,
libasound2-plugins (the ALSA->pulse bridge PortAudio talks through) and libportaudio2.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pulse_daemon import private_pulseaudio
from rt_helpers import StandInModel, write_test_video
from soundlens.models.errors import SoundLensError
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.sources import MicrophoneConfig, MicrophoneSource, VideoFileConfig, VideoFileSource
from soundlens.realtime.worker import WorkerConfig

RATE = 16000
PACKAGES = "apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"


def _sounddevice():
    try:
        import sounddevice
    except OSError as err:
        pytest.skip(f"PortAudio missing ({err}): {PACKAGES}")
    return sounddevice


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory):
    """A PulseAudio daemon of our own with a pipe source as the default input; yields the FIFO path."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip(f"pulseaudio is not installed: {PACKAGES}")
    if os.geteuid() != 0:
        pytest.skip("the virtual microphone recipe runs a private PulseAudio daemon as root; run as root")
    if (not Path("/usr/share/alsa/alsa.conf.d/pulse.conf").exists()
            and not Path("/etc/alsa/conf.d/99-pulse.conf").exists()):
        pytest.skip(f"the ALSA pulse plugin is missing: {PACKAGES}")
    sd = _sounddevice()
    home = tmp_path_factory.mktemp("pulse")
    fifo = home / "mic.fifo"
    modules = (f"load-module module-null-sink sink_name=vsink rate={RATE} channels=1\n"
               f"load-module module-pipe-source source_name=vmic file={fifo} format=s16le rate={RATE} "
               "channels=1\nset-default-sink vsink\nset-default-source vmic\n")
    with private_pulseaudio(home, modules) as env, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSE_SERVER", env["PULSE_SERVER"])
        sd._terminate()  # PortAudio lists devices once: re-initialise so it sees pulse
        sd._initialize()
        try:
            yield fifo
        finally:
            sd._terminate()
    sd._initialize()


@contextlib.contextmanager
def feed(fifo: Path, samples: np.ndarray):
    """Write int16 samples into the pipe source at real time (20 ms blocks) on a thread, then
    silence until the block exits: a pipe source without a writer stalls PortAudio's reads.
    Yields an Event set once `samples` are all written."""
    stop, done = threading.Event(), threading.Event()

    def writer():
        fd = os.open(fifo, os.O_WRONLY)
        try:
            t0, n, block = time.monotonic(), 0, RATE // 50
            silence = np.zeros(block, "<i2")
            while not stop.is_set():
                chunk = samples[n : n + block] if n < samples.size else silence
                os.write(fd, chunk.tobytes())
                n += block
                if n >= samples.size:
                    done.set()
                wait = t0 + n / RATE - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        finally:
            os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=5)


def test_microphone_records_the_known_signal_with_a_fitted_clock(virtual_mic):
    signal_ = np.random.default_rng(7).integers(-20000, 20000, size=int(2.5 * RATE)).astype("<i2")
    mic = MicrophoneSource(MicrophoneConfig(device="pulse", sample_rate=RATE))
    with mic, feed(virtual_mic, signal_) as written:
        assert written.wait(timeout=10)
        time.sleep(0.3)
        now = time.monotonic_ns()
        ring = mic.audio
        recorded = ring.read(ring.start, ring.end - ring.start)
        end_time = ring.clock.time_ns(ring.end)
        slope = ring.clock.fit()[2]
    assert mic.sample_rate == RATE and mic.stats.overflows == 0
    assert mic.stats.samples_in == ring.end >= signal_.size
    as_int = np.round(recorded * 32768).astype(np.int64)
    # align on the first 64 samples, then everything recorded must be the signal, sample for sample
    start = next(i for i in range(as_int.size - 64) if np.array_equal(as_int[i : i + 64], signal_[:64]))
    got = as_int[start : start + signal_.size]
    assert np.mean(got == signal_[: got.size]) > 0.99 and got.size > 0.95 * signal_.size
    # the clock fitted from callback times runs at the real rate and ends about now
    assert slope == pytest.approx(1e9 / RATE, rel=0.03)
    assert abs(end_time - now) < 0.15e9


def test_video_frames_with_live_microphone_audio(virtual_mic, tmp_path):
    clip = write_test_video(tmp_path / "frames.mp4", frames=150, size=(64, 48))  # 6 s, no audio track
    video = VideoFileSource(VideoFileConfig(path=str(clip), audio=False))
    mic = MicrophoneSource(MicrophoneConfig(device="pulse", sample_rate=RATE))
    tone = (12000 * np.sin(2 * np.pi * 440 * np.arange(6 * RATE) / RATE)).astype("<i2")
    config = LiveConfig(worker=WorkerConfig(hop=0.1), publisher=PublisherConfig(address="tcp://127.0.0.1:*"),
                        seconds=2.5)
    with feed(virtual_mic, tone):
        with LivePipeline(StandInModel(input_seconds=0.5), video, mic, config) as pipeline:
            with Subscriber(pipeline.publisher.address) as sub:
                status = pipeline.run()
                msg = sub.latest(wire.topic("heatmap", "cam0"))
    assert status["counters"]["inferences"] >= 10 and status["counters"]["overflows"] == 0
    assert msg is not None and msg.header["audio"]["sample_rate"] == RATE
    assert msg.header["audio"]["num_samples"] == RATE // 2  # the window the model asked for
    kinds = {s["kind"] for s in pipeline.meta()["sources"]}
    assert kinds == {"video", "microphone"}


def test_unknown_input_device_lists_the_real_ones(virtual_mic):
    with pytest.raises(SoundLensError, match="inputs here: .*pulse"):
        MicrophoneSource(MicrophoneConfig(device="no-such-microphone")).start()


class _Status:
    input_overflow = False


def test_a_hole_in_the_input_is_filled_with_silence_and_counted(monkeypatch):
    """No PortAudio needed: the callback is fed by hand on a fake clock. A suspended source stops
    calling back for 2 s and then resumes with no overflow flag; jitter of 0.1 s is not a hole."""
    import soundlens.realtime.sources.microphone as microphone

    now = [10**12]
    monkeypatch.setattr(microphone.time, "monotonic_ns", lambda: now[0])
    mic = MicrophoneSource(MicrophoneConfig(sample_rate=RATE))
    block = np.ones((320, 1), np.float32)

    def run(seconds: float, late: float = 0.0):
        now[0] += int(late * 1e9)
        for _ in range(int(round(seconds * 50))):
            now[0] += 20_000_000
            mic._callback(block, 320, None, _Status())

    run(3.0)
    now[0] += 100_000_000  # one callback 0.1 s late (scheduling), then a burst: nothing was lost
    for _ in range(6):
        mic._callback(block, 320, None, _Status())
    run(1.0)
    assert mic.stats.gaps == 0 and mic.audio.gap_samples == 0
    before = mic.audio.end
    run(2.0, late=2.0)  # suspended for 2 s, then 2 s of fresh audio
    ring = mic.audio
    assert mic.stats.gaps == 1 and mic.stats.overflows == 0 and "no audio for 2.00 s" in mic.last_error
    assert ring.gap_samples == pytest.approx(2 * RATE, abs=2)
    hole = ring.read(before, ring.gap_samples)
    assert hole is not None and not hole.any()  # silence, not audio from before the hole
    assert ring.read(ring.end - 2 * RATE + 320, 2 * RATE - 320).min() == 1.0  # what came after it
    # sample indices still keep time: the newest sample is stamped now, not 2 s ago
    assert abs(ring.clock.time_ns(ring.end) - now[0]) < 5e6


def test_a_stalled_microphone_gives_no_heatmaps_from_old_sound():
    """Frames keep coming while the audio stopped 2 s ago: the worker skips them (audio_stale)
    rather than pair them with the last audio it has."""
    from soundlens.realtime.clock import FixedClock
    from soundlens.realtime.ring import AudioRing, FrameRing
    from soundlens.realtime.worker import InferenceWorker

    class Sink:
        def __init__(self):
            self.sent = []

        def publish(self, kind, stream, header, buffers=None):
            self.sent.append(kind)

    t0 = time.monotonic_ns() - 4 * 10**9
    audio = AudioRing(4 * RATE, RATE, FixedClock(RATE, t0))
    audio.write(np.full(2 * RATE, 0.1, np.float32))  # audio up to 2 s ago, nothing since
    frames, sink = FrameRing(), Sink()
    worker = InferenceWorker(StandInModel(input_seconds=0.5), frames, audio, sink,
                             WorkerConfig(hop=0.05)).start()
    try:
        for _ in range(6):
            frames.put(np.zeros((48, 64, 3), np.uint8))
            time.sleep(0.1)
        audio.write(np.full(int(2.6 * RATE), 0.1, np.float32))  # the audio resumes and catches up
        for _ in range(4):
            frames.put(np.zeros((48, 64, 3), np.uint8))
            time.sleep(0.1)
    finally:
        worker.stop()
    assert worker.stats.audio_stale >= 5
    assert worker.stats.inferences >= 2 and sink.sent.count("heatmap") == worker.stats.inferences
