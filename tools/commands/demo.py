"""`soundlens demo`: the first minute with SoundLens, on the model that ships with the repo.

Generates a procedural scene (2-3 shapes, one of them sounding), localizes the sound with the
default model and writes the frame, the sound and the overlay PNG.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="out/demo", help="folder for scene.jpg, scene.wav, overlay.png")
    parser.add_argument("--model", default="default", help="checkpoint or shipped name")
    parser.add_argument("--seed", type=int, default=7, help="which procedural scene")
    parser.add_argument("--size", type=int, default=320, help="frame size in pixels")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def run(args) -> int:
    import soundfile as sf
    from PIL import Image

    from tools.commands import localize
    from training.synth import CLASSES, SceneConfig, make_scene

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = make_scene(args.seed, SceneConfig(image_size=args.size, min_objects=2, max_objects=3))
    Image.fromarray(scene.frame).save(out / "scene.jpg", quality=95)
    sf.write(out / "scene.wav", scene.waveform, scene.sample_rate)
    names = ", ".join(CLASSES[c] for c, _ in scene.objects)
    print(f"scene: {names} in view; sounding: {CLASSES[scene.label]} at box {scene.box.round().tolist()}")
    peaks = localize.localize_files(args.model, str(out / "scene.jpg"), str(out / "scene.wav"),
                                    str(out / "overlay.png"), device=args.device)
    x, y = peaks[0][0] * scene.frame.shape[1], peaks[0][1] * scene.frame.shape[0]
    x1, y1, x2, y2 = scene.box
    verdict = "inside" if x1 <= x <= x2 and y1 <= y <= y2 else "outside"
    print(f"the peak is {verdict} the sounding {CLASSES[scene.label]}; open {out / 'overlay.png'}")
    return 0
