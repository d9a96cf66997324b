"""Render docs/images/viewer.png: the real viewer, offscreen, on the live pipeline's procedural scene.

    .venv/bin/python docs/make_viewer_screenshot.py [--model default] [--seconds 6] [--out
    docs/images/viewer.png]

The scene streams at real time through the live pipeline (preview frames on), is published on a
loopback port, and the viewer window (PyQt5 + pyqtgraph, offscreen platform) shows it; after
`--seconds` the window is saved as a PNG. No display is needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PYQTGRAPH_QT_LIB"] = "PyQt5"
from soundlens import models  # noqa: E402  (after the Qt environment is set)
from soundlens.realtime.pipeline import LiveConfig, LivePipeline  # noqa: E402
from soundlens.realtime.publisher import PublisherConfig  # noqa: E402
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource  # noqa: E402
from soundlens.realtime.viewer import ViewerConfig, ViewerWindow, ensure_app  # noqa: E402
from soundlens.realtime.worker import WorkerConfig  # noqa: E402
from soundlens.tools.commands.live import audio_buffer_seconds  # noqa: E402
from soundlens.training.synth import SceneConfig, SynthVideo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="checkpoint or shipped name (default)")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to run before the screenshot")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "images" / "viewer.png"))
    args = parser.parse_args()

    model = models.load(args.model)
    video = SynthVideo(args.seconds + 10, seed=args.seed, config=SceneConfig(image_size=256))
    source = SyntheticSource(video, SyntheticConfig(sample_rate=model.audio_preset.sample_rate,
                                                    audio_seconds=audio_buffer_seconds(model)))
    config = LiveConfig(worker=WorkerConfig(hop=0.1, preview=True, preview_fps=30, jpeg_quality=90),
                        publisher=PublisherConfig(address="tcp://127.0.0.1:*"))
    app = ensure_app(offscreen=os.environ.get("QT_QPA_PLATFORM") == "offscreen")
    with LivePipeline(model, source, source, config, model_info=models.describe(model),
                      model_id=str(args.model)) as pipeline:
        window = ViewerWindow(ViewerConfig(address=pipeline.publisher.address))
        window.resize(800, 720)
        window.show()
        deadline = time.monotonic() + args.seconds
        next_status = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            app.processEvents()
            if time.monotonic() >= next_status:  # the status topic the status bar reads
                pipeline._publish_status()
                next_status += 1.0
            time.sleep(0.01)
        path = window.save_snapshot(args.out)
        window.close()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
