"""`soundlens localize`: where in this image is this sound? Writes an overlay PNG."""

from __future__ import annotations

from pathlib import Path

from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.tools.commands import add_backend_argument


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="default",
                        help="checkpoint (.safetensors) or shipped name (default)")
    parser.add_argument("--image", required=True, help="image file (JPEG/PNG)")
    parser.add_argument("--audio", required=True, help="audio or video file with sound (any rate)")
    parser.add_argument("-o", "--out", required=True, help="overlay PNG to write")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--top-k", type=int, default=1, help="number of peaks to mark")
    add_backend_argument(parser)


def run(args) -> int:
    localize_files(args.model, args.image, args.audio, args.out, device=args.device, top_k=args.top_k,
                   backend=args.backend)
    return 0


def localize_files(model_name: str, image: str, audio: str, out: str, device: str | None = None,
                   top_k: int = 1, backend: str = "eager") -> list[tuple[float, float]]:
    """Heatmap of `audio` over `image`, written as an overlay PNG at `out`; returns the peaks (x, y)
    as fractions of the width and height. The map is placed on the part of the image the model saw
    and its peaks found as the live pipeline does (realtime.peaks), at the map's own resolution, each
    cell where it looks (the model's `cell_centres`), and drawn by the painter every SoundLens overlay
    uses."""
    # torch, the model zoo and PIL load here, not at import: `soundlens localize --help` stays instant.
    import torch
    from PIL import Image
    from soundlens.models.devices import pick_device
    from soundlens.models.inference import for_inference
    from soundlens.models.media import read_audio, read_image
    from soundlens.realtime.overlay import OverlayPainter
    from soundlens.realtime.peaks import find_peaks, map_region, normalise
    from soundlens.realtime.result import to_peaks

    device = pick_device(device)
    model = for_inference(models.load(model_name, device=device), backend, device=device)
    frame = read_image(image)
    wav, rate = read_audio(audio)
    if wav.size == 0:
        raise SoundLensError(f"{audio} contains no audio samples")
    with torch.inference_mode():
        native = model.localize(frame[None], wav[None], rate)[0].float().cpu().numpy()
    h, w = frame.shape[:2]
    resize = getattr(model.image_preset, "resize", "square")
    region = map_region(w, h, resize)
    centres = model.cell_centres((h, w), native.shape)
    peaks = to_peaks(find_peaks(native, top_k, region=region, frame_size=(w, h), centres=centres))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(
        OverlayPainter(resize).draw(frame, normalise(native)[0], region, peaks, centres)).save(path)
    where = ", ".join(f"({p.u:.3f}, {p.v:.3f})" for p in peaks) or "none (flat map)"
    print(f"{path}: {model.method} heatmap over {w}x{h} frame; peak at {where} "
          f"(x, y as fractions of width, height)")
    return [(p.u, p.v) for p in peaks]
