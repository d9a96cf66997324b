"""Input presets: how each method's official code turns audio and frames into tensors.

Presets are data (like timm's pretrained cfgs): a method names the presets it was trained
with, and a checkpoint stores them, so a model always gets the inputs it expects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from soundlens.models.errors import SoundLensError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AudioPreset:
    """One official audio front-end.

    Window selection: the clip is first tiled/cut to `context` seconds (if set), tiled
    again if shorter than `duration`, then a `duration`-second window is cut at `anchor`.
    """

    name: str
    sample_rate: int  # Hz the spectrogram is computed at (input is resampled to it)
    duration: float  # seconds of audio in the spectrogram
    hop: int  # samples between frames (scipy: nperseg - noverlap)
    transform: str  # "scipy_psd" (scipy.signal.spectrogram defaults), "power" (torchaudio Spectrogram)
    # or "mel_db" (torchaudio MelSpectrogram(normalized=True) -> AmplitudeToDB, SSL-TIE)
    anchor: str = "centre"  # where the window sits in the clip: "centre" or "start"
    context: float | None = None  # seconds loaded (tiled) before the window is cut
    n_fft: int = 512
    log_eps: float = 1e-7
    scale: float = 12.0  # official Normalize(mean=0, std=12)
    n_mels: int | None = None  # mel bands ("mel_db" only)

    @property
    def input_seconds(self) -> float:
        """Seconds of audio the front-end consumes (what a live pipeline must buffer)."""
        return self.context if self.context is not None else self.duration

    @property
    def num_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    @property
    def num_frames(self) -> int:
        """Time frames T of the output spectrogram."""
        if self.transform in ("power", "mel_db"):  # centred STFT
            return 1 + self.num_samples // self.hop
        return (self.num_samples - (self.n_fft - self.hop)) // self.hop

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.n_mels or self.n_fft // 2 + 1, self.num_frames)


@dataclass(frozen=True)
class ImagePreset:
    """How a frame becomes the model's input image."""

    name: str
    size: int = 224
    resize: str = "square"  # "square": Resize((s, s)); "short_side": Resize(s) + CenterCrop(s)
    interpolation: str = "bicubic"
    train_resize: int = 246  # training: Resize(short side) -> RandomCrop(size) -> HFlip
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


# official_repos.md §1.1 / §2.1: EZ-VSL (and SLAVC, FNAC) take 3 s centred, scipy nperseg 512 /
# noverlap 274 (hop 238), log(x+1e-7), /12 -> 257x200 at 16 kHz.
# §2.3 LVS: first 10 s, same transform -> 257x671.
# §2.4 SSL-Align: 10 s loaded, [3.5 s, 6.5 s] slice (= centred 3 s of the 10 s), noverlap 353 -> 257x299.
# §2.8 JSA: 16 kHz, centred 5 s, torchaudio Spectrogram(n_fft 512, hop 160, centre, power 2) -> 257x501.
# §2.6 HearTheFlow (and SIRA §2.7): 22.05 kHz, centred 3 s, scipy 512/274 -> 257x276.
# §2.5 SSL-TIE: tiled to 10 s, first 10 s, torchaudio MelSpectrogram(n_fft 512, hop 239, n_mels 257,
# normalized=True) -> AmplitudeToDB (10 log10, no /12) -> 257x670.
AUDIO_PRESETS: dict[str, AudioPreset] = {
    p.name: p
    for p in (
        AudioPreset("ezvsl", 16000, 3.0, hop=512 - 274, transform="scipy_psd"),
        AudioPreset("lvs", 16000, 10.0, hop=512 - 274, transform="scipy_psd", anchor="start"),
        AudioPreset("sslalign", 16000, 3.0, hop=512 - 353, transform="scipy_psd", context=10.0),
        AudioPreset("jsa", 16000, 5.0, hop=160, transform="power"),
        AudioPreset("htf", 22050, 3.0, hop=512 - 274, transform="scipy_psd"),
        AudioPreset("ssltie", 16000, 10.0, hop=239, transform="mel_db", anchor="start", scale=1.0,
                    n_mels=257),
    )
}

# official_repos.md §2.1: EZ-VSL test = Resize((224,224), bicubic); §2.3: LVS test = Resize(224) +
# CenterCrop(224); §2.4: SSL-Align tensor Resize((224,224)); §2.8: JSA eval Resize((224,224), bicubic).
# "lite" is SoundLens' own CPU real-time preset: 112 px input.
IMAGE_PRESETS: dict[str, ImagePreset] = {
    p.name: p
    for p in (
        ImagePreset("ezvsl"),
        ImagePreset("lvs", resize="short_side"),
        ImagePreset("sslalign"),
        ImagePreset("jsa"),
        ImagePreset("htf", resize="short_side"),
        # §2.7 SIRA's own loader: Resize((224, 224), bicubic) at train and test (its 224 RandomCrop
        # of a 224 image is a no-op and it never flips; SIRA.prepare keeps that, see sira.py).
        ImagePreset("sira"),
        ImagePreset("lite", size=112, train_resize=123),
    )
}


def audio_preset(name: str) -> AudioPreset:
    try:
        return AUDIO_PRESETS[name]
    except KeyError:
        raise SoundLensError(
            f"unknown audio preset '{name}'; choose one of {', '.join(AUDIO_PRESETS)}"
        ) from None


def image_preset(name: str) -> ImagePreset:
    try:
        return IMAGE_PRESETS[name]
    except KeyError:
        raise SoundLensError(
            f"unknown image preset '{name}'; choose one of {', '.join(IMAGE_PRESETS)}"
        ) from None


def preset_dict(preset: AudioPreset | ImagePreset) -> dict:
    return asdict(preset)
