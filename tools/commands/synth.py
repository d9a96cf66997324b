"""`soundlens synth pairs|video`: write the procedural benchmark to disk."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="synth_command", metavar="KIND", required=True)

    pairs = sub.add_parser("pairs", help="frame + 3 s audio pairs in the VGG-SS layout")
    pairs.add_argument("--n", type=int, required=True, help="number of pairs")
    pairs.add_argument("--out", required=True, help="output directory (new or empty)")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--image-size", "--image_size", type=int, default=224, help="frame side in pixels")
    pairs.add_argument("--duration", type=float, default=3.0, help="clip length in seconds")
    pairs.add_argument("--silent-prob", "--silent_prob", type=float, default=0.0,
                       help="share of scenes whose sound comes from a class not in view")
    pairs.add_argument("--distractor-prob", "--distractor_prob", type=float, default=0.0,
                       help="share of scenes with an extra, quieter off-screen sound")
    pairs.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes")
    pairs.add_argument("--overwrite", action="store_true", help="write into a non-empty directory")

    video = sub.add_parser("video", help="an mp4 with moving objects + a per-frame JSON sidecar")
    video.add_argument("--seconds", type=float, default=20.0)
    video.add_argument("--out", required=True, help="output .mp4 path; the sidecar is the same name .json")
    video.add_argument("--seed", type=int, default=0)
    video.add_argument("--fps", type=float, default=25.0)
    video.add_argument("--size", type=int, default=320, help="frame side in pixels (even)")
    video.add_argument("--gap-prob", "--gap_prob", type=float, default=0.2,
                       help="chance of a short silent gap after each sounding segment")


def run(args: argparse.Namespace) -> int:
    from soundlens.training.synth import SceneConfig, write_pairs, write_video  # torch import: only when run

    if args.synth_command == "pairs":
        config = SceneConfig(image_size=args.image_size, duration=args.duration,
                             silent_prob=args.silent_prob, distractor_prob=args.distractor_prob)
        out = write_pairs(args.out, args.n, seed=args.seed, config=config, workers=args.workers,
                          progress=True, overwrite=args.overwrite)
        print(f"wrote {args.n} pairs to {out}: frames/, audio/, annotations.json, train.txt, synth.json")
        return 0
    sidecar = write_video(args.out, args.seconds, seed=args.seed, config=SceneConfig(image_size=args.size),
                          fps=args.fps, gap_prob=args.gap_prob)
    print(f"wrote {args.out} ({round(args.seconds * args.fps)} frames, {args.size}x{args.size}) "
          f"and ground truth {sidecar}")
    return 0
