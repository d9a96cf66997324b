"""Audio front-ends reproduce the official preprocessing (scipy / torchaudio) on the same waveform."""

import numpy as np
import pytest
import scipy.signal
import torch
from soundlens import models
from soundlens.models.frontends import select_window


def reference_window(x: np.ndarray, preset) -> np.ndarray:
    """The official window selection, written with numpy for the test (official_repos.md §2)."""
    if preset.context is not None:
        n = int(preset.context * preset.sample_rate)
        x = np.tile(x, -(-n // len(x)))[:n]
    length = preset.num_samples
    x = np.tile(x, -(-length // len(x)))
    start = 0 if preset.anchor == "start" else (len(x) - length) // 2
    return x[start : start + length]


def test_window_selection_matches_reference():
    x = torch.arange(16000 * 12, dtype=torch.float32)[None]
    for name in ("ezvsl", "lvs", "sslalign", "jsa"):
        preset = models.audio_preset(name)
        got = select_window(x, preset)[0].numpy()
        np.testing.assert_array_equal(got, reference_window(x[0].numpy(), preset))
    # SSL-Align: samples [3.5 s, 6.5 s] of the first 10 s (official_repos.md §2.4)
    got = select_window(x, models.audio_preset("sslalign"))[0]
    assert got[0] == 3.5 * 16000 and got[-1] == 6.5 * 16000 - 1


@pytest.mark.parametrize("name", ["ezvsl", "lvs", "sslalign", "htf"])
@pytest.mark.parametrize("seconds", [2.0, 11.0])
def test_scipy_psd_presets_match_scipy(name, seconds):
    preset = models.audio_preset(name)
    rate = preset.sample_rate
    rng = np.random.default_rng(1)
    n = int(seconds * rate)
    x = (0.2 * rng.standard_normal(n)
         + 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    got = models.audio_frontend(name)(torch.from_numpy(x)[None], rate)
    seg = np.clip(reference_window(x, preset), -1, 1).astype(np.float64)  # official clip to [-1, 1]
    _, _, psd = scipy.signal.spectrogram(seg, rate, nperseg=512, noverlap=512 - preset.hop)
    ref = np.log(psd + 1e-7) / 12
    assert tuple(got.shape) == (1,) + preset.shape
    rel = np.abs(got[0, 0].numpy() - ref) / np.abs(ref)
    assert rel.max() <= 1e-4


def test_jsa_preset_matches_torchaudio_spectrogram():
    import torchaudio

    rng = np.random.default_rng(2)
    x = (0.3 * rng.standard_normal(16000 * 7)).astype(np.float32)
    got = models.audio_frontend("jsa")(torch.from_numpy(x)[None], 16000)
    seg = torch.from_numpy(np.clip(reference_window(x, models.audio_preset("jsa")), -1, 1)).double()
    spec = torchaudio.transforms.Spectrogram(n_fft=512, win_length=512, hop_length=160, power=2,
                                             window_fn=lambda n: torch.hann_window(n, dtype=torch.float64))
    ref = (torch.log(spec(seg) + 1e-7) / 12).numpy()
    assert tuple(got.shape) == (1, 1, 257, 501)
    assert (np.abs(got[0, 0].numpy() - ref) / np.abs(ref)).max() <= 1e-4


def test_resampling_from_any_rate_keeps_the_tone():
    # A 1 kHz tone at 44.1 kHz must land in the 1 kHz bin of the 16 kHz spectrogram.
    rate = 44100
    t = np.arange(rate * 3) / rate
    x = torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))[None]
    spec = models.audio_frontend("ezvsl")(x, rate)
    assert tuple(spec.shape) == (1, 1, 257, 200)
    peak_bin = int(spec[0, 0].mean(dim=1).argmax())
    assert abs(peak_bin * 16000 / 512 - 1000) <= 16000 / 512


def test_frontend_rejects_bad_audio():
    from soundlens.models.errors import SoundLensError

    fe = models.audio_frontend("ezvsl")
    with pytest.raises(SoundLensError, match="int16"):
        fe(torch.zeros(1, 100, dtype=torch.int16), 16000)
    with pytest.raises(SoundLensError, match="empty"):
        fe(torch.zeros(1, 0), 16000)
    with pytest.raises(SoundLensError, match="mono"):
        fe(torch.zeros(1, 2, 100), 16000)
