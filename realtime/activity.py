"""Is anything sounding, and is it in the picture? `activity` and `on_screen` of a result.

* `audio_activity`: the level of the model's audio window in dBFS (20 log10 of its RMS, so a
  full-scale sine reads -3.01 dBFS) and whether it is below the silence threshold (`--silence-db`).
  The tracker takes no peaks from a silent window, so no track is born from silence.
* `OnScreenReader`: for methods whose native map is a cosine similarity between the audio
  embedding and each location's visual embedding (possibly divided by a temperature), the
  similarity of the best location, in [-1, 1]. The rule: the sound is taken to be on screen when
  that similarity reaches `threshold`: the method's own positive threshold where it has one (LVS's
  and SSL-Align's `epsilon`, 0.65: the similarity above which their training calls a location the
  source), else 0.5 (halfway between unrelated, 0, and identical, 1); `--on-screen-threshold`
  overrides it. Methods whose map is no similarity (JSA's and SIRA's fused maps) have no
  `on_screen`. Calibrate the threshold on your own scenes before acting on it: a model trained on
  other data has other similarities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_SILENCE_DB = -50.0
FLOOR_DB = -120.0  # digital silence reads this instead of -inf (wire numbers are finite)
DEFAULT_ON_SCREEN = 0.5

# method -> how its raw map relates to the cosine similarity: "tau" (map = cos / config.tau) or "cos".
SIMILARITY_MAPS = {"ezvsl": "tau", "slavc": "tau", "lvs": "cos", "sslalign": "cos"}


@dataclass(frozen=True)
class Activity:
    dbfs: float  # RMS level of the audio window
    silent: bool  # dbfs < threshold_db
    threshold_db: float

    def to_json(self) -> dict:
        return {"dbfs": round(self.dbfs, 2), "silent": self.silent, "threshold_db": self.threshold_db}


@dataclass(frozen=True)
class OnScreen:
    similarity: float  # cosine similarity of the best location, [-1, 1]
    visible: bool  # similarity >= threshold
    threshold: float

    def to_json(self) -> dict:
        return {"similarity": round(self.similarity, 4), "visible": self.visible, "threshold": self.threshold}


def level_dbfs(samples: np.ndarray) -> float:
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0:
        return FLOOR_DB
    rms = math.sqrt(float(np.mean(np.square(np.nan_to_num(samples)))))
    return max(FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else FLOOR_DB


def audio_activity(samples: np.ndarray, silence_db: float = DEFAULT_SILENCE_DB) -> Activity:
    level = level_dbfs(samples)
    return Activity(level, level < silence_db, float(silence_db))


class OnScreenReader:
    """`reader(raw_max)` -> OnScreen for a model whose map is a similarity; `for_model` gives None
    otherwise."""

    def __init__(self, kind: str, tau: float = 1.0, threshold: float = DEFAULT_ON_SCREEN):
        self.kind, self.tau, self.threshold = kind, float(tau), float(threshold)

    @classmethod
    def for_model(cls, model, threshold: float | None = None) -> OnScreenReader | None:
        kind = SIMILARITY_MAPS.get(getattr(model, "method", ""))
        if kind is None:
            return None
        # `localize` never fuses an object prior: the map stays a similarity
        config = getattr(model, "config", None)
        tau = float(getattr(config, "tau", 1.0)) if kind == "tau" else 1.0
        if threshold is None:
            threshold = (float(getattr(config, "epsilon", DEFAULT_ON_SCREEN)) if kind == "cos"
                         else DEFAULT_ON_SCREEN)
        return cls(kind, tau, threshold)

    def __call__(self, raw_max: float) -> OnScreen | None:
        if not math.isfinite(raw_max):
            return None
        similarity = float(np.clip(raw_max * self.tau, -1.0, 1.0))
        return OnScreen(similarity, similarity >= self.threshold, self.threshold)
