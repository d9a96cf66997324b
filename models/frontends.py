"""Audio front-ends in torch: waveform [B, N] -> log spectrogram [B, 1, F, T].

They reproduce the official preprocessing (presets.py) so released checkpoints see the
inputs they were trained on, and run on whatever device the waveform is on.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.signal import get_window
from soundlens.models.errors import SoundLensError
from soundlens.models.presets import AudioPreset, audio_preset


def tile_to(waveform: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat [B, N] along time until it has at least `length` samples (official 'tile if short')."""
    n = waveform.shape[-1]
    if n == 0:
        raise SoundLensError("the audio is empty (0 samples); give a clip with sound")
    if n >= length:
        return waveform
    return waveform.repeat(1, -(-length // n))


def select_window(waveform: torch.Tensor, preset: AudioPreset) -> torch.Tensor:
    """Cut the preset's window from [B, N] samples at the preset rate -> [B, preset.num_samples]."""
    if preset.context is not None:
        context = int(round(preset.context * preset.sample_rate))
        waveform = tile_to(waveform, context)[:, :context]
    length = preset.num_samples
    waveform = tile_to(waveform, length)
    start = 0 if preset.anchor == "start" else (waveform.shape[-1] - length) // 2
    return waveform[:, start : start + length]


@functools.lru_cache(maxsize=8)
def _tukey_window(n_fft: int) -> np.ndarray:
    # scipy.signal.spectrogram's default window: periodic Tukey(0.25).
    return get_window(("tukey", 0.25), n_fft)


def _power(spec: torch.Tensor) -> torch.Tensor:
    """|z|^2 of a complex tensor as re^2 + im^2: no square root taken and undone (abs().square())."""
    return torch.view_as_real(spec).square().sum(-1)


def tukey_window(n_fft: int, dtype=torch.float64, device=None) -> torch.Tensor:
    return torch.as_tensor(_tukey_window(n_fft), dtype=dtype, device=device)


def scipy_psd_spectrogram(x: torch.Tensor, sample_rate: int, n_fft: int, hop: int,
                          window: torch.Tensor | None = None) -> torch.Tensor:
    """`scipy.signal.spectrogram(x, fs, nperseg=n_fft, noverlap=n_fft-hop)` with its defaults.

    Defaults reproduced: Tukey(0.25) periodic window, constant detrend per segment, one-sided
    density-scaled PSD (units: power / Hz), no padding. x: [B, N] -> [B, n_fft//2+1, T] in the
    window's dtype (float64 unless a `window` from `tukey_window(n_fft, dtype)` says otherwise;
    `AudioFrontend` passes its cached one so no call builds it again).
    """
    if window is None:
        window = tukey_window(n_fft, device=x.device)
    segments = x.to(window.dtype).unfold(-1, n_fft, hop)  # [B, T, n_fft], a view: one batch, no loop
    segments = (segments - segments.mean(dim=-1, keepdim=True)) * window
    spec = _power(torch.fft.rfft(segments, dim=-1))
    # Density scaling, one-sided: interior bins doubled (DC and, for even n_fft, Nyquist are not),
    # in place on the one buffer rather than through a per-call scale vector.
    spec.mul_(2.0 / (sample_rate * float(window.square().sum())))
    spec[..., 0] *= 0.5
    if n_fft % 2 == 0:
        spec[..., -1] *= 0.5
    return spec.transpose(-1, -2)


def hann_window(n_fft: int, dtype=torch.float64, device=None) -> torch.Tensor:
    return torch.hann_window(n_fft, dtype=dtype, device=device)


def _stft_power(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    stft = torch.stft(
        x.to(window.dtype), n_fft, hop_length=hop, win_length=n_fft, window=window,
        center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )
    return _power(stft)


def power_spectrogram(x: torch.Tensor, n_fft: int, hop: int,
                      window: torch.Tensor | None = None) -> torch.Tensor:
    """torchaudio `Spectrogram(n_fft, win_length=n_fft, hop, center=True, power=2)`: [B, N] -> [B, F, T]."""
    return _stft_power(x, n_fft, hop, hann_window(n_fft, device=x.device) if window is None else window)


@functools.lru_cache(maxsize=8)
def _mel_filters(n_freqs: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    # torchaudio MelSpectrogram defaults: f_min 0, f_max sr/2, HTK mel scale, no filter norm.
    import torchaudio.functional as AF  # on demand: importing torchaudio costs seconds

    return AF.melscale_fbanks(n_freqs, 0.0, sample_rate / 2, n_mels, sample_rate, None, "htk").double()


def mel_db_spectrogram(x: torch.Tensor, sample_rate: int, n_fft: int, hop: int, n_mels: int,
                       window: torch.Tensor | None = None,
                       filters: torch.Tensor | None = None) -> torch.Tensor:
    """torchaudio `MelSpectrogram(sr, n_fft, hop_length=hop, n_mels, normalized=True)` then
    `AmplitudeToDB()` (power, 10·log10(max(x, 1e-10)), no top_db): [B, N] -> [B, n_mels, T] (SSL-TIE,
    §2.5)."""
    window = hann_window(n_fft, device=x.device) if window is None else window
    if filters is None:
        filters = _mel_filters(n_fft // 2 + 1, n_mels, sample_rate).to(x.device, window.dtype)
    # normalized=True: the window's L2 norm
    power = _stft_power(x, n_fft, hop, window) / window.square().sum()
    mel = torch.einsum("bft,fm->bmt", power, filters)
    return 10.0 * torch.log10(mel.clamp_min(1e-10))


class AudioFrontend:
    """Callable `(waveform [B, N] float, sample_rate Hz) -> [B, 1, F, T] float32` for one preset.

    The whole batch goes through one STFT (no loop over clips). Windows and mel filters are built
    once per (device, dtype) and kept (`cache=False` builds them on every call, the unoptimised
    path `bench speed --reference` times). `dtype` is the precision the spectrogram is computed in:
    float64 (default) reproduces scipy/torchaudio to ~1e-12. float32 is cheaper but not the same
    answer: the detrended DC bin (~0) comes out at float32 rounding level instead, which moves its
    log by whole units; a random-weight SIRA's min-max map then differs by 3.5e-4 (measured).
    """

    def __init__(self, preset: AudioPreset, *, cache: bool = True, dtype: torch.dtype = torch.float64):
        self.preset = preset
        self.cache = cache
        self.dtype = dtype
        self._tensors: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _window_and_filters(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (str(device), self.dtype)
        found = self._tensors.get(key) if self.cache else None
        if found is None:
            p = self.preset
            if p.transform == "scipy_psd":
                found = (tukey_window(p.n_fft, self.dtype, device), None)
            else:
                window = hann_window(p.n_fft, self.dtype, device)
                filters = None
                if p.transform == "mel_db":
                    filters = _mel_filters(p.n_fft // 2 + 1, p.n_mels or p.n_fft // 2 + 1, p.sample_rate)
                    filters = filters.to(device, self.dtype)
                found = (window, filters)
            if self.cache:
                self._tensors[key] = found
        return found

    def __call__(self, waveform: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        p = self.preset
        x = torch.as_tensor(waveform)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2:
            raise SoundLensError(
                f"audio must be mono [batch, samples], got shape {tuple(x.shape)}; mix channels down first"
            )
        if not x.is_floating_point():
            raise SoundLensError(f"audio must be float in [-1, 1], got {x.dtype}; divide int16 "
                                 "samples by 32768")
        if sample_rate <= 0:
            raise SoundLensError(f"invalid sample rate {sample_rate} Hz")
        x = x.float()
        if sample_rate != p.sample_rate:
            import torchaudio.functional as AF  # imported on demand: it costs seconds at start-up

            x = AF.resample(x, int(sample_rate), p.sample_rate)
        x = select_window(x, p).clamp(-1.0, 1.0)
        window, filters = self._window_and_filters(x.device)
        if p.transform == "mel_db":
            db = mel_db_spectrogram(x, p.sample_rate, p.n_fft, p.hop, p.n_mels or p.n_fft // 2 + 1,
                                    window, filters)
            return (db / p.scale).float().unsqueeze(1)
        if p.transform == "scipy_psd":
            spec = scipy_psd_spectrogram(x, p.sample_rate, p.n_fft, p.hop, window)
        else:
            spec = power_spectrogram(x, p.n_fft, p.hop, window)
        return (torch.log(spec + p.log_eps) / p.scale).float().unsqueeze(1)


def audio_frontend(name: str) -> AudioFrontend:
    """The front-end of a named preset: `ezvsl`, `lvs`, `sslalign`, `jsa`, `htf` or `ssltie`."""
    return AudioFrontend(audio_preset(name))
