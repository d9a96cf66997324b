"""`soundlens bench <what>`: benchmarks. Each is a sub-subcommand with its own flags and runner.

    soundlens bench live [--model CKPT] [--seconds 20] [--out results.json] [--video FILE]
    soundlens bench accuracy --methods ezvsl,lvs,... --data procedural [--pairs N] [--epochs E] [--out DIR]
"""

from __future__ import annotations

import json
from pathlib import Path

from soundlens.models.errors import SoundLensError


def add_arguments(parser) -> None:
    """One sub-parser per entry of BENCHES (defined at the bottom, after the runners)."""
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (add, run_bench, summary) in BENCHES.items():
        p = sub.add_parser(name, help=summary, description=summary)
        add(p)
        p.set_defaults(_bench=run_bench)


def run(args) -> int:
    return args._bench(args)


# --- bench live -------------------------------------------------------------------------------
def _live_arguments(parser) -> None:
    from soundlens.tools.commands.live import add_pipeline_arguments, add_source_arguments

    parser.add_argument("--model", default=None, metavar="CKPT|NAME",
                        help="checkpoint or shipped name (default: 'default' if shipped, else an untrained "
                             "lite EZ-VSL, which runs at the same speed)")
    parser.add_argument("--video", metavar="FILE", default=None,
                        help="stream this file (looped) instead of the procedural video")
    parser.add_argument("--hop", type=float, default=0.0,
                        help="seconds between heatmaps (default 0: every new frame, to measure capacity)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds left out before measuring (default: the model's audio window + 1 s, "
                             "so every measured window is full)")
    parser.add_argument("--out", metavar="JSON", default=None, help="write the results here")
    add_source_arguments(parser)
    add_pipeline_arguments(parser)
    parser.set_defaults(publish="tcp://127.0.0.1:*", seconds=20.0, loop=True)


def bench_model(name: str | None):
    """(model, model id) for the benchmark."""
    from soundlens import models

    if name is not None:
        return models.load(name), name
    try:
        return models.load("default"), "default"
    except SoundLensError:
        return models.create("ezvsl", encoder="lite"), "ezvsl-lite (untrained: speed only)"


def _run_live(args) -> int:
    from soundlens import models
    from soundlens.realtime.bench import bench_live, meets_targets
    from soundlens.realtime.pipeline import status_line
    from soundlens.tools.commands.live import audio_buffer_seconds, build_sources, check_args, pipeline_config

    args.camera = None
    args.synthetic = args.video is None
    if args.seconds is None or args.seconds <= 0:
        raise SoundLensError(f"--seconds must be > 0, got {args.seconds}")
    check_args(args)
    model, model_id = bench_model(args.model)
    if args.warmup is None:
        args.warmup = model.audio_preset.input_seconds + 1.0
    if args.synthetic:
        args.synthetic_seconds = max(args.synthetic_seconds, args.seconds + args.warmup + 5)
    video, audio = build_sources(args, model.audio_preset.sample_rate, audio_buffer_seconds(model))
    config = pipeline_config(args, args.hop)
    print(f"soundlens bench live: {model_id} on {video.kind} {video.name}, "
          f"{args.warmup:g} s warm-up + {args.seconds:g} s", flush=True)
    result = bench_live(model, video, audio, config, seconds=args.seconds, warmup=args.warmup,
                        model_info=models.describe(model), model_id=model_id,
                        on_status=lambda s: print(status_line(s), flush=True))
    lat = result["latency_ms"]["capture_to_publish"]
    verdict = "meets" if meets_targets(result) else "misses"
    print(f"heatmaps/s {result['heatmaps_per_s']:.1f} | capture->publish p50 {lat['p50']} ms p99 {lat['p99']} ms | "
          f"cpu {result['cpu']['process_cpu_over_wall']:.2f} of {result['cpu']['cores']} cores | {result['device']} | "
          f"{verdict} the targets (>= {result['targets']['heatmaps_per_s']:g}/s, p99 <= {result['targets']['p99_ms']:g} ms)")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


# --- bench accuracy ---------------------------------------------------------------------------
def _accuracy_arguments(parser) -> None:
    from soundlens.training.benchmark import AccuracyConfig as A

    parser.add_argument("--methods", default=",".join(A.methods),
                        help=f"comma-separated methods to train and score (default {','.join(A.methods)})")
    parser.add_argument("--data", default=A.data, help="training data; only 'procedural' (default)")
    parser.add_argument("--pairs", type=int, default=A.pairs, help=f"training pairs (default {A.pairs})")
    parser.add_argument("--epochs", type=int, default=A.epochs, help=f"epochs per method (default {A.epochs})")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=A.batch_size)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate for every method (default: each method's the method's Recipe (short_run_lr), 1e-3 "
                             "unless its Recipe names another)")
    parser.add_argument("--encoder", default=A.encoder, help=f"trunk for every method (default {A.encoder})")
    parser.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=A.image_size,
                        help=f"procedural frame side in px (default {A.image_size})")
    parser.add_argument("--test-pairs", "--test_pairs", dest="test_pairs", type=int, default=A.test_pairs,
                        help=f"held-out test scenes, 2-3 objects each (default {A.test_pairs})")
    parser.add_argument("--val-pairs", "--val_pairs", dest="val_pairs", type=int, default=A.val_pairs,
                        help="held-out validation scenes that pick each best checkpoint")
    parser.add_argument("--protocol", default=A.protocol)
    parser.add_argument("--seed", type=int, default=A.seed)
    parser.add_argument("--seeds", default=None, metavar="S,S,...",
                        help="train every method once per seed and report mean ± std and min (e.g. 0,1,2)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--workers", type=int, default=A.workers, help="data-loading processes")
    parser.add_argument("--gallery", type=int, default=A.gallery, help="test scenes in gallery.png")
    parser.add_argument("--out", default=A.out, metavar="DIR", help=f"output folder (default {A.out})")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--paper-options", dest="short_run_options", action="store_false",
                        help="train with every paper default, not the method's Recipe (short_run_options) (step-counted "
                             "horizons such as SLAVC's EMA momentum scaled to a short run)")


def _run_accuracy(args) -> int:
    import shlex

    from soundlens.training.benchmark import AccuracyConfig, run_accuracy

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip()) if args.seeds else ()
    except ValueError:
        raise SoundLensError(f"--seeds takes comma-separated integers (e.g. 0,1,2), got '{args.seeds}'") from None
    for name in ("pairs", "epochs", "batch_size", "test_pairs", "val_pairs"):
        if getattr(args, name) < 1:
            raise SoundLensError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    # The full command (every setting spelled out), so the report says exactly how to remake it.
    flags = [("--methods", ",".join(methods)), ("--data", args.data), ("--pairs", args.pairs),
             ("--epochs", args.epochs), ("--batch-size", args.batch_size),
             ("--encoder", args.encoder), ("--image-size", args.image_size), ("--test-pairs", args.test_pairs),
             ("--val-pairs", args.val_pairs), ("--protocol", args.protocol)]
    flags.append(("--seeds", ",".join(map(str, seeds))) if seeds else ("--seed", args.seed))
    if args.lr is not None:
        flags.append(("--lr", args.lr))
    if args.device:
        flags.append(("--device", args.device))
    if not args.short_run_options:
        flags.append(("--paper-options", None))
    command = "soundlens bench accuracy " + " ".join(k if v is None else f"{k} {shlex.quote(str(v))}" for k, v in flags)
    cfg = AccuracyConfig(methods=methods, data=args.data, pairs=args.pairs, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, encoder=args.encoder, image_size=args.image_size,
                         test_pairs=args.test_pairs, val_pairs=args.val_pairs, protocol=args.protocol,
                         seed=args.seed, seeds=seeds, device=args.device, workers=args.workers, gallery=args.gallery,
                         out=args.out, progress=args.progress, short_run_options=args.short_run_options,
                         command=command)
    run_accuracy(cfg)
    out = Path(args.out)
    print((out / "accuracy.md").read_text())
    print(f"wrote {out / 'accuracy.json'}, {out / 'accuracy.md'}, {out / 'success_curve.png'}, {out / 'gallery.png'}")
    return 0


# sub-subcommand -> (add its arguments, run it, summary)
BENCHES: dict[str, tuple] = {
    "live": (_live_arguments, _run_live, "heatmaps/s, capture->publish latency and CPU of the live pipeline"),
    "accuracy": (_accuracy_arguments, _run_accuracy,
                 "train each method with one budget on the procedural benchmark; cIoU/AUC/R@K table + plots"),
}
