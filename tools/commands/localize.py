"""`soundlens localize`: where in this image is this sound? Writes an overlay PNG."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="default", help="checkpoint (.safetensors) or shipped name (default)")
    parser.add_argument("--image", required=True, help="image file (JPEG/PNG)")
    parser.add_argument("--audio", required=True, help="audio or video file with sound (any rate)")
    parser.add_argument("-o", "--out", required=True, help="overlay PNG to write")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--top-k", type=int, default=1, help="number of peaks to mark")


def run(args) -> int:
    localize_files(args.model, args.image, args.audio, args.out, device=args.device, top_k=args.top_k)
    return 0


def localize_files(model_name: str, image: str, audio: str, out: str, device: str | None = None,
                   top_k: int = 1) -> list[tuple[float, float]]:
    """Heatmap of `audio` over `image`, written as an overlay PNG at `out`; returns the peaks (x, y)."""
    import torch
    from PIL import Image

    import models
    from tools.media import load_audio, load_image
    from tools.overlay import overlay_heatmap

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = models.load(model_name, device=device)
    frame = load_image(image)
    wav, rate = load_audio(audio)
    with torch.inference_mode():
        native = model.localize(frame[None], wav[None], rate).float()
        heat = models.minmax(models.resize_map(native, frame.shape[:2], mode="bilinear"))[0].cpu().numpy()
    peaks = top_peaks(heat, top_k)
    overlay = overlay_heatmap(frame, heat, peaks=peaks)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay).save(path)
    where = ", ".join(f"({x:.3f}, {y:.3f})" for x, y in peaks)
    print(f"{path}: {model.method} heatmap over {frame.shape[1]}x{frame.shape[0]} frame; peak at {where} "
          f"(x, y as fractions of width, height)")
    return peaks


def top_peaks(heat, k: int) -> list[tuple[float, float]]:
    """Up to k local maxima of a [H, W] map (non-maximum suppressed), as normalised (x, y)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(heat)[None, None]
    h, w = heat.shape
    size = max(3, (min(h, w) // 8) | 1)
    is_max = (t == F.max_pool2d(t, size, stride=1, padding=size // 2))[0, 0].numpy()
    ys, xs = np.nonzero(is_max)
    order = np.argsort(-heat[ys, xs])[:k]
    return [((xs[i] + 0.5) / w, (ys[i] + 0.5) / h) for i in order]
