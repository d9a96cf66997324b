"""`soundlens` entry point: a name -> (module, summary) table; only the invoked command is imported
(pip's layout), so `--help` is fast and one command's dependencies never break another."""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from soundlens.models.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, SoundLensError

# name -> (module under tools.commands, one-line summary). Only commands that work are listed.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the live pipeline on a procedural scene with the shipped model: viewer or overlay "
                     "video, hit rate"),
    "models": ("models_cmd", "list the registered methods and their presets"),
    "eval": ("eval_cmd", "score saved heatmaps against box annotations under an official protocol"),
    "data": ("data", "dataset utilities: check-split finds test clips in a training list"),
    "train": ("train",
              "train a method on procedural or prepared data (CPU, GPU, torchrun; checkpoints + log)"),
    "localize": ("localize", "heatmap of one image + audio pair, written as an overlay PNG"),
    "synth": ("synth", "generate the procedural audio-visual benchmark (pairs or videos)"),
    "live": ("live", "camera/video/synthetic + microphone -> heatmaps published over ZeroMQ"),
    "view": ("view", "window showing a live stream: frame, heatmap, peaks, fps/latency/drops"),
    "record": ("record", "record a live stream's messages into an MCAP file (crash-safe chunks)"),
    "replay": ("replay", "republish an MCAP recording with its original timing"),
    "analyze": ("analyze",
                "heatmap on every frame of a recorded video: overlay mp4 (with its sound) + JSONL"),
    "bench": ("bench", "benchmarks: 'bench live' measures heatmaps/s, latency and CPU of the live pipeline"),
    "import": ("import_cmd", "convert an official release's checkpoint (.pth) to a SoundLens checkpoint"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return ("usage: soundlens COMMAND [options]\n\nReal-time audio-visual sound source localization.\n\n"
            "commands:\n" + "\n".join(lines) + "\n\n'soundlens COMMAND --help' shows a command's options.")


def command_parser(name: str):
    """(parser, run) of one command, importing only its module."""
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(f"soundlens.tools.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=f"soundlens {name}", description=summary)
    module.add_arguments(parser)
    return parser, module.run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        print(f"soundlens: unknown command '{name}'{hint}; see 'soundlens --help'", file=sys.stderr)
        return EXIT_USER_ERROR
    parser, run = command_parser(name)
    args = parser.parse_args(argv[1:])
    args.command = name
    try:
        return int(run(args) or 0)
    except SoundLensError as err:
        print(f"soundlens {name}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
