"""Sound synthesis: one generator per sound type, background noise and the scene mix.

Each generator returns `n` samples at `sr` Hz with unit RMS. The types are laid out so
their energy sits in different parts of 0-8 kHz (or has a different fine structure:
comb, line, band, sweep, pulses), and each draws its pitch/rate from a class-specific
range, so a 512-point STFT separates them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import fft as sfft

Generator = Callable[[np.random.Generator, int, int], np.ndarray]


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(x * x))), 1e-8)


def band_noise(rng: np.random.Generator, n: int, sr: int, low: float, high: float) -> np.ndarray:
    """White noise restricted to [low, high] Hz by zeroing FFT bins (soft 10% edges). [n], unit RMS."""
    spectrum, freqs, m = _noise_spectrum(rng, n, sr)
    edge = 0.1 * (high - low)
    gain = np.clip((freqs - low + edge) / edge, 0, 1) * np.clip((high + edge - freqs) / edge, 0, 1)
    return _unit_rms(sfft.irfft(spectrum * gain, m)[:n])


def _noise_spectrum(rng: np.random.Generator, n: int, sr: int):
    # Noise is drawn at a fast FFT length and cut: n is arbitrary (random onsets), and a
    # prime-ish FFT length would be several times slower than the whole rest of a scene.
    m = sfft.next_fast_len(n, real=True)
    spectrum = sfft.rfft(rng.standard_normal(m, dtype=np.float32))
    return spectrum, np.fft.rfftfreq(m, 1.0 / sr).astype(np.float32), m


def _harmonics(t: np.ndarray, f0: np.ndarray | float, sr: int, partials, amps) -> np.ndarray:
    # f0 may vary over time (vibrato), so integrate it into a phase once, then multiply.
    # Wrapped to one turn it is exact enough in float32, where sin is several times faster.
    phase = (np.mod(np.cumsum(np.broadcast_to(f0, t.shape)) / sr, 1.0).astype(np.float32)
             * np.float32(2 * np.pi))
    out = np.zeros(t.shape, np.float32)
    for k, a in zip(partials, amps):
        out += np.float32(a) * np.sin(np.float32(k) * phase)
    return out


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def hum(rng, n, sr):
    """Low harmonic stack, f0 100-160 Hz, 12 partials falling as 1/k."""
    t = _time(n, sr)
    f0 = rng.uniform(100, 160) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    k = np.arange(1, 13)
    return _unit_rms(_harmonics(t, f0, sr, k, 1.0 / k))


def whistle(rng, n, sr):
    """Near-pure tone 2.2-2.8 kHz with 4-7 Hz vibrato."""
    t = _time(n, sr)
    f = rng.uniform(2200, 2800) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    return _unit_rms(_harmonics(t, f, sr, (1, 2), (1.0, 0.15)))


def rumble(rng, n, sr):
    """Low-pass noise below 350-500 Hz with a slow swell."""
    t = _time(n, sr)
    swell = 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6.3))
    return _unit_rms(band_noise(rng, n, sr, 40, rng.uniform(350, 500)) * swell)


def beeps(rng, n, sr):
    """Tone bursts 1.0-1.3 kHz gated at 5-8 Hz."""
    t = _time(n, sr)
    frac = np.mod(t * rng.uniform(5, 8) + rng.uniform(0, 1), 1.0)
    gate = np.where(frac < 0.5, np.sin(np.pi * frac / 0.5) ** 2, 0.0)
    return _unit_rms(np.sin(2 * np.pi * rng.uniform(1000, 1300) * t) * gate)


def hiss(rng, n, sr):
    """Noise band around 3-4 kHz."""
    low = rng.uniform(2900, 3200)
    return band_noise(rng, n, sr, low, low + rng.uniform(700, 1000))


def bell(rng, n, sr):
    """Inharmonic partials (1, 2.76, 5.40) of f0 480-580 Hz, struck every 0.45-0.7 s."""
    t = _time(n, sr)
    since = np.mod(t + rng.uniform(0, 0.4), rng.uniform(0.45, 0.7))
    f0 = rng.uniform(480, 580)
    tone = _harmonics(t, f0, sr, (1.0, 2.76, 5.40), (1.0, 0.6, 0.35))
    return _unit_rms(tone * np.exp(-since / 0.15))


def rattle(rng, n, sr):
    """Broadband clicks (3 ms noise bursts) at 10-16 per second."""
    period = sr / rng.uniform(10, 16)
    starts = np.arange(rng.uniform(0, period), n, period)
    starts = (starts + rng.uniform(-0.1, 0.1, size=starts.size) * period).astype(int).clip(0, n - 1)
    impulses = np.zeros(n)
    impulses[starts] = rng.uniform(0.6, 1.0, size=starts.size)
    length = int(0.003 * sr)
    click = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.3 * length))
    return _unit_rms(np.convolve(impulses, click)[:n])


def _sweeps(rng, n, sr, f_from: float, f_to: float, period: float) -> np.ndarray:
    # Repeated exponential sweeps; each restarts at f_from, with a short fade at the jump.
    t = _time(n, sr)
    frac = np.mod(t / period + rng.uniform(0, 1), 1.0)
    f = f_from * (f_to / f_from) ** frac
    fade = np.clip(np.minimum(frac, 1 - frac) / 0.05, 0, 1)
    return _unit_rms(np.sin(2 * np.pi * np.cumsum(f) / sr) * fade)


def chirp_up(rng, n, sr):
    """Rising sweeps ~300 -> ~1800 Hz, 0.3-0.5 s each."""
    j = rng.uniform(0.9, 1.1)
    return _sweeps(rng, n, sr, 300 * j, 1800 * j, rng.uniform(0.3, 0.5))


def chirp_down(rng, n, sr):
    """Falling sweeps ~5.5 -> ~3.9 kHz, 0.25-0.45 s each."""
    j = rng.uniform(0.95, 1.05)
    return _sweeps(rng, n, sr, 5500 * j, 3900 * j, rng.uniform(0.25, 0.45))


def sizzle(rng, n, sr):
    """High noise band ~6-7.8 kHz with fast flutter."""
    t = _time(n, sr)
    flutter = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(15, 25) * t)
    return _unit_rms(band_noise(rng, n, sr, rng.uniform(5800, 6200), 7800) * flutter)


def organ(rng, n, sr):
    """Odd harmonics (1, 3, 5, 7) of f0 650-780 Hz: a hollow, clarinet-like tone."""
    t = _time(n, sr)
    return _unit_rms(_harmonics(t, rng.uniform(650, 780), sr, (1, 3, 5, 7), (1.0, 0.5, 0.3, 0.2)))


def warble(rng, n, sr):
    """FM tone: carrier 1.5-1.8 kHz, 12-20 Hz modulation, 150-250 Hz deviation."""
    t = _time(n, sr)
    f = rng.uniform(1500, 1800) + rng.uniform(150, 250) * np.sin(2 * np.pi * rng.uniform(12, 20) * t)
    return _unit_rms(_harmonics(t, f, sr, (1,), (1.0,)))


SOUNDS: dict[str, Generator] = {
    fn.__name__: fn
    for fn in (hum, whistle, rumble, beeps, hiss, bell, rattle, chirp_up, chirp_down, sizzle, organ, warble)
}


def background_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Coloured noise with a random 1/f^alpha tilt (alpha 0.6-1.4: pink to brownish), [n] unit RMS."""
    spectrum, freqs, m = _noise_spectrum(rng, n, sr)
    spectrum *= np.maximum(freqs, 50.0) ** np.float32(-rng.uniform(0.6, 1.4) / 2)
    return _unit_rms(sfft.irfft(spectrum, m)[:n])


def fade(x: np.ndarray, sr: int, seconds: float = 0.01) -> np.ndarray:
    """Raised-cosine fade in and out (`seconds` each) so a sound never starts with a click. [n]."""
    m = min(int(seconds * sr), x.size // 2)
    if m > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
        x = x.copy()
        x[:m] *= ramp
        x[-m:] *= ramp[::-1]
    return x
