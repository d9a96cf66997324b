"""`soundlens models`: the registered methods with their presets."""

from __future__ import annotations

import dataclasses
import json


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args) -> int:
    from soundlens import models

    rows = []
    for name in models.available():
        entry = models.method_entry(name)
        cfg = models.make_config(name)
        rows.append({
            "method": name,
            "summary": entry.summary,
            "paper": entry.paper,
            "encoder": cfg.encoder,
            "audio_preset": cfg.audio_preset,
            "image_preset": cfg.image_preset_name(),
        })
    if args.json:
        presets = {k: dataclasses.asdict(v) for k, v in models.AUDIO_PRESETS.items()}
        print(json.dumps({"methods": rows, "audio_presets": presets}, indent=2))
        return 0
    print(f"{'method':<10} {'encoder':<13} {'audio':<9} {'image':<7} summary")
    for r in rows:
        print(f"{r['method']:<10} {r['encoder']:<13} {r['audio_preset']:<9} {r['image_preset']:<7} {r['summary']}")
    print("\naudio presets (rate, seconds -> spectrogram):")
    for name, p in models.AUDIO_PRESETS.items():
        print(f"  {name:<9} {p.sample_rate} Hz, {p.input_seconds:g} s -> {p.shape[1]}x{p.shape[2]}")
    print("image presets: " + ", ".join(f"{n} ({p.size} px, {p.resize})" for n, p in models.IMAGE_PRESETS.items()))
    print("\nany method also runs with encoder=lite (CPU real time); 'soundlens localize --model default' "
          "uses the shipped model")
    return 0
