"""Microphone through PortAudio (sounddevice): the callback only copies into the ring.

sounddevice is imported when the stream opens, not with this module: on Linux importing it
without the system PortAudio raises OSError, and nothing else needs it. Each callback copies
the block, records (end sample index, monotonic time) for the clock fit, and counts overflows;
it takes no locks and neither logs nor allocates much.

A device that stops delivering and then resumes (a PulseAudio source suspended, its module
reloaded, the stream moved to another source) loses the samples in between without any overflow
flag. A callback that comes more than `gap` seconds later than its samples account for marks
such a hole: the ring is filled with silence up to the block, so sample indices stay proportional
to time (the clock fit stays a line, and a window after the hole is never audio from before it
glued to the present), and `stats.gaps` / `audio.gap_samples` count it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from soundlens.models.errors import SoundLensError
from soundlens.realtime.clock import SampleClock
from soundlens.realtime.ring import AudioRing
from soundlens.realtime.sources.base import Source


def import_sounddevice():
    """The sounddevice module, or a SoundLensError saying how to get PortAudio."""
    try:
        import sounddevice  # needs the PortAudio library: only for a microphone, with a clear error
    except OSError as err:  # sounddevice raises OSError('PortAudio library not found')
        raise SoundLensError(
            f"cannot use a microphone: {err}; install the PortAudio library with "
            "`apt-get install libportaudio2` (Debian/Ubuntu) and try again"
        ) from None
    except ImportError:
        raise SoundLensError("the sounddevice package is missing; `pip install sounddevice`") from None
    return sounddevice


@dataclass
class MicrophoneConfig:
    device: int | str | None = None  # PortAudio index or name substring; None: the default input
    sample_rate: int = 16000  # asked of the device; the model resamples if it differs
    seconds: float = 12.0  # ring capacity
    latency: float | str = "low"  # PortAudio input latency; blocksize stays 0 (host's choice)
    blocksize: int = 0
    gap: float = 0.5  # a callback this much later than its samples account for follows a hole in the input


def parse_mic(text: str | None) -> int | str | None:
    if text is None or text == "default":
        return None
    return int(text) if text.strip().isdigit() else text


def list_inputs(sd) -> str:
    names = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    return "; ".join(names) if names else "none"


class MicrophoneSource(Source):
    kind = "microphone"

    def __init__(self, config: MicrophoneConfig | None = None):
        self.config = config or MicrophoneConfig()
        super().__init__("default" if self.config.device is None else str(self.config.device))
        self._stream = None
        self.sample_rate = self.config.sample_rate
        self.audio = AudioRing.for_seconds(self.config.seconds, self.sample_rate,
                                           SampleClock(self.sample_rate))
        self._last_ns: int | None = None  # entry time of the previous callback

    def _callback(self, indata, frames, time_info, status) -> None:
        t_ns = time.monotonic_ns()
        if status.input_overflow:
            self.stats.overflows += 1
        ring = self.audio
        index = None
        if self._last_ns is not None:
            late_ns = t_ns - self._last_ns - frames * 1e9 / self.sample_rate
            if late_ns > self.config.gap * 1e9:  # nothing came for a while: those samples are lost
                missing = int(round(late_ns * self.sample_rate / 1e9))
                index = ring.end + missing  # the ring fills the hole with silence
                self.stats.gaps += 1
                self.report(f"no audio for {late_ns / 1e9:.2f} s (device suspended or switched?); "
                            "filled with silence")
        self._last_ns = t_ns
        end = ring.write(indata[:, 0], index)
        ring.clock.observe(end, t_ns)
        self.stats.samples_in += frames

    def _finished(self) -> None:
        if not self.stopping:
            self.report("the input stream ended (device unplugged?)")
            self.finished.set()

    def _start(self) -> None:
        sd = import_sounddevice()
        cfg = self.config
        try:
            sd.query_devices(cfg.device, "input")
        except (ValueError, sd.PortAudioError) as err:
            raise SoundLensError(
                f"no input device {cfg.device!r} ({err}); inputs here: {list_inputs(sd)}. "
                "Give --mic with one of them, or 'default'"
            ) from None
        rate = cfg.sample_rate
        try:
            stream = self._open(sd, rate)
        except sd.PortAudioError:
            # The device may not support the model's rate: take its own and let the model resample.
            rate = int(sd.query_devices(cfg.device, "input")["default_samplerate"])
            try:
                stream = self._open(sd, rate)
            except sd.PortAudioError as err:
                raise SoundLensError(f"cannot open input {cfg.device!r}: {err}") from None
        if rate != self.sample_rate:
            self.sample_rate = rate
            self.audio = AudioRing.for_seconds(cfg.seconds, rate, SampleClock(rate))
        # The fit maps callback-entry time to a block's last sample; the host latency moves it back.
        self.audio.clock.latency_ns = int(stream.latency * 1e9)
        self._stream = stream
        stream.start()

    def _open(self, sd, rate: int):
        cfg = self.config
        return sd.InputStream(
            device=cfg.device, samplerate=rate, channels=1, dtype="float32",
            blocksize=cfg.blocksize, latency=cfg.latency,
            callback=self._callback, finished_callback=self._finished,
        )

    def _stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()  # input only: nothing pending is worth waiting for (stop() can stall)
                self._stream.close()
            except Exception as err:  # a vanished device may refuse to stop; it is gone anyway
                self.report(f"closing the stream failed: {err}")
            self._stream = None

    def describe(self) -> dict:
        return {**super().describe(), "sample_rate": self.sample_rate}
