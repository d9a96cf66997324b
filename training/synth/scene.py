"""One benchmark scene: a frame with 1-3 objects, audio of exactly one of them, and its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from soundlens.models.errors import SoundLensError
from soundlens.training.synth.classes import CLASSES, SPECS
from soundlens.training.synth.shapes import background, draw_object
from soundlens.training.synth.sounds import SOUNDS, background_noise, fade


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Sizes in pixels, times in seconds, levels in dB.

    `classes` restricts objects and sounds to some class names (empty = all of `CLASSES`);
    labels stay indices into the full `CLASSES`. `scale` is the object's extent as a
    fraction of the image side; `max_overlap` is how far (fraction of the smaller radius)
    two objects' discs may intrude into each other. `onset_max` is the latest sound onset
    as a fraction of `duration`; `distractor_db` is the off-screen sound's level relative
    to the sounding object; `peak` is the random peak amplitude of the final mix.
    """

    image_size: int = 224
    sample_rate: int = 16000
    duration: float = 3.0
    min_objects: int = 1
    max_objects: int = 3
    silent_prob: float = 0.0
    distractor_prob: float = 0.0
    snr_db: tuple[float, float] = (10.0, 30.0)
    classes: tuple[str, ...] = ()
    scale: tuple[float, float] = (0.15, 0.40)
    max_overlap: float = 0.15
    onset_max: float = 0.25
    distractor_db: tuple[float, float] = (-12.0, -6.0)
    peak: tuple[float, float] = (0.3, 0.9)

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown:
            raise SoundLensError(f"unknown synth classes {unknown}; choose from {list(CLASSES)}")
        if self.image_size < 32:
            raise SoundLensError(f"image_size {self.image_size} is too small; use at least 32 pixels")
        if self.sample_rate < 16000 or self.duration <= 0:
            raise SoundLensError("sample_rate must be >= 16000 Hz and duration > 0 s")
        pool = len(self.class_indices())
        if not 1 <= self.min_objects <= self.max_objects <= pool:
            raise SoundLensError(
                f"need 1 <= min_objects ({self.min_objects}) <= max_objects ({self.max_objects}) "
                f"<= number of classes ({pool})"
            )
        for name in ("silent_prob", "distractor_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SoundLensError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if (self.silent_prob > 0 or self.distractor_prob > 0) and self.max_objects >= pool:
            raise SoundLensError("silent scenes and distractors need a class off screen: lower max_objects")
        if not 0.02 <= self.scale[0] <= self.scale[1] <= 0.9:
            raise SoundLensError(f"scale {self.scale} must be fractions of the image side, 0.02 <= "
                                 "lo <= hi <= 0.9")

    def class_indices(self) -> np.ndarray:
        """Indices into `CLASSES` that scenes draw from. int64 [K]."""
        if not self.classes:
            return np.arange(len(CLASSES))
        return np.array(sorted(CLASSES.index(c) for c in self.classes))


@dataclass
class Scene:
    """A rendered scene and its ground truth.

    frame uint8 [H, W, 3] RGB; waveform float32 [N] mono in [-1, 1] at `sample_rate`;
    label: class index of the sound; box float32 [4] x1, y1, x2, y2 in pixels of the sounding
    object's full extent (zeros when silent); mask bool [H, W] its visible pixels;
    objects: (class index, box) of every visible object in drawing order; sounding: index
    into `objects` or None; distractor: class index of an off-screen sound or None.
    """

    frame: np.ndarray
    waveform: np.ndarray
    sample_rate: int
    label: int
    box: np.ndarray
    mask: np.ndarray
    objects: list[tuple[int, np.ndarray]] = field(default_factory=list)
    silent: bool = False
    sounding: int | None = None
    distractor: int | None = None


@dataclass(frozen=True)
class Placement:
    """Where one object sits: class index, centre and radius in pixels, angle in radians, brightness
    factor."""

    cls: int
    cx: float
    cy: float
    radius: float
    angle: float
    brightness: float


def place_objects(rng: np.random.Generator, classes: np.ndarray, config: SceneConfig) -> list[Placement]:
    """Random non-overlapping-ish placements for `classes`, fully inside the image.

    Objects that find no room after a few shrinking retries are dropped (never the first).
    """
    size = config.image_size
    placed: list[Placement] = []
    for cls in classes:
        lo, hi = config.scale
        for attempt in range(40):
            radius = rng.uniform(lo, hi) * size / 2
            cx, cy = rng.uniform(radius, size - radius, size=2)
            if all(np.hypot(cx - p.cx, cy - p.cy)
                   >= (radius + p.radius) - config.max_overlap * min(radius, p.radius)
                   for p in placed):
                placed.append(Placement(int(cls), cx, cy, radius, rng.uniform(0, 2 * np.pi),
                                        rng.uniform(0.85, 1.1)))
                break
            if attempt % 10 == 9:  # crowded: allow smaller objects
                hi = max(lo, hi * 0.85)
    return placed


def class_sound(rng: np.random.Generator, cls: int, n: int, sr: int) -> np.ndarray:
    """Class `cls`'s sound, `n` samples at `sr` Hz, unit RMS, faded in and out. float64 [n]."""
    return fade(SOUNDS[SPECS[cls].sound](rng, n, sr), sr)


def _mix(rng: np.random.Generator, label: int, distractor: int | None, config: SceneConfig) -> np.ndarray:
    sr = config.sample_rate
    n = int(round(config.duration * sr))
    out = np.zeros(n)

    def add(cls: int, gain: float) -> None:
        start = int(rng.uniform(0, config.onset_max) * n)
        out[start:] += gain * class_sound(rng, cls, n - start, sr)

    add(label, 1.0)
    if distractor is not None:
        add(distractor, 10 ** (rng.uniform(*config.distractor_db) / 20))
    out += background_noise(rng, n, sr) * 10 ** (-rng.uniform(*config.snr_db) / 20)
    out *= rng.uniform(*config.peak) / max(float(np.abs(out).max()), 1e-8)
    return out.astype(np.float32)


def make_scene(seed: int | np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    """Draw one scene. Same seed (or generator state) and config -> identical scene."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    size = config.image_size
    pool = config.class_indices()
    k = int(rng.integers(config.min_objects, config.max_objects + 1))
    placements = place_objects(rng, rng.choice(pool, size=k, replace=False), config)

    image = background(rng, size)
    ids = np.full((size, size), -1, np.int8)
    objects = [
        (p.cls, draw_object(image, ids, i, SPECS[p.cls], p.cx, p.cy, p.radius, p.angle, p.brightness))
        for i, p in enumerate(placements)
    ]
    visible = [cls for cls, _ in objects]
    off_screen = np.setdiff1d(pool, visible)

    silent = bool(rng.random() < config.silent_prob)
    if silent:
        sounding, label = None, int(rng.choice(off_screen))
        box, mask = np.zeros(4, np.float32), np.zeros((size, size), bool)
    else:
        sounding = int(rng.integers(len(objects)))  # uniform: saliency must not tell which one sounds
        label, box = objects[sounding]
        mask = ids == sounding
    distractor, candidates = None, off_screen[off_screen != label]
    if rng.random() < config.distractor_prob and candidates.size:
        distractor = int(rng.choice(candidates))

    return Scene(
        frame=np.clip(image + 0.5, 0, 255).astype(np.uint8),
        waveform=_mix(rng, label, distractor, config),
        sample_rate=config.sample_rate,
        label=label,
        box=box.copy(),
        mask=mask,
        objects=objects,
        silent=silent,
        sounding=sounding,
        distractor=distractor,
    )
