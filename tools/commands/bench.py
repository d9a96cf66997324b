"""`soundlens bench <what>`: benchmarks. Each is a sub-subcommand with its own flags and runner.

    soundlens bench live [--model CKPT] [--seconds 20] [--out results.json] [--video FILE]
    soundlens bench accuracy --methods ezvsl,lvs,... --data procedural [--pairs N] [--epochs E] [--out DIR]
    soundlens bench speed [--methods ...] [--batch 1,16] [--threads N] [--device cpu|cuda]
                          [--backend eager,onnxruntime] [--reference] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.tools.commands.live import (
    add_pipeline_arguments,
    add_source_arguments,
    audio_buffer_seconds,
    build_sources,
    check_args,
    pipeline_config,
)


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
    if name is not None:
        return models.load(name), name
    try:
        return models.load("default"), "default"
    except SoundLensError:
        return models.create("ezvsl", encoder="lite"), "ezvsl-lite (untrained: speed only)"


def _run_live(args) -> int:
    # the live pipeline (torch, cv2, PyAV) only when 'bench live' runs
    from soundlens.realtime.bench import bench_live, meets_targets
    from soundlens.realtime.pipeline import status_line

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
    print(f"heatmaps/s {result['heatmaps_per_s']:.1f} | capture->publish p50 {lat['p50']} ms p99 "
          f"{lat['p99']} ms | cpu {result['cpu']['process_cpu_over_wall']:.2f} of {result['cpu']['cores']} "
          f"cores | {result['device']} | {verdict} the targets (>= "
          f"{result['targets']['heatmaps_per_s']:g}/s, p99 <= {result['targets']['p99_ms']:g} ms)")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


# --- bench accuracy ---------------------------------------------------------------------------
def _accuracy_arguments(parser) -> None:
    # training.benchmark imports torch: only once this parser is built, not on import
    from soundlens.training.benchmark import AccuracyConfig as A

    parser.add_argument("--methods", default=",".join(A.methods),
                        help=f"comma-separated methods to train and score (default {','.join(A.methods)})")
    parser.add_argument("--data", default=A.data, help="training data; only 'procedural' (default)")
    parser.add_argument("--pairs", type=int, default=A.pairs, help=f"training pairs (default {A.pairs})")
    parser.add_argument("--epochs", type=int, default=A.epochs,
                        help=f"epochs per method (default {A.epochs})")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=A.batch_size)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate for every method (default: each method's the method's Recipe "
                             "(short_run_lr), 1e-3 unless its Recipe names another)")
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
                        help="train with every paper default, not the method's Recipe (short_run_options) "
                             "(step-counted horizons such as SLAVC's EMA momentum scaled to a short run)")


def _run_accuracy(args) -> int:
    # torch, not on import (as in _accuracy_arguments)
    from soundlens.training.benchmark import AccuracyConfig, run_accuracy

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip()) if args.seeds else ()
    except ValueError:
        raise SoundLensError("--seeds takes comma-separated integers (e.g. 0,1,2), "
                             f"got '{args.seeds}'") from None
    for name in ("pairs", "epochs", "batch_size", "test_pairs", "val_pairs"):
        if getattr(args, name) < 1:
            raise SoundLensError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    # The full command (every setting spelled out), so the report says exactly how to remake it.
    flags = [("--methods", ",".join(methods)), ("--data", args.data), ("--pairs", args.pairs),
             ("--epochs", args.epochs), ("--batch-size", args.batch_size),
             ("--encoder", args.encoder), ("--image-size", args.image_size),
             ("--test-pairs", args.test_pairs), ("--val-pairs", args.val_pairs),
             ("--protocol", args.protocol)]
    flags.append(("--seeds", ",".join(map(str, seeds))) if seeds else ("--seed", args.seed))
    if args.lr is not None:
        flags.append(("--lr", args.lr))
    if args.device:
        flags.append(("--device", args.device))
    if not args.short_run_options:
        flags.append(("--paper-options", None))
    command = "soundlens bench accuracy " + " ".join(k if v is None else f"{k} {shlex.quote(str(v))}"
                                                     for k, v in flags)
    cfg = AccuracyConfig(methods=methods, data=args.data, pairs=args.pairs, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, encoder=args.encoder,
                         image_size=args.image_size, test_pairs=args.test_pairs, val_pairs=args.val_pairs,
                         protocol=args.protocol, seed=args.seed, seeds=seeds, device=args.device,
                         workers=args.workers, gallery=args.gallery, out=args.out, progress=args.progress,
                         short_run_options=args.short_run_options, command=command)
    run_accuracy(cfg)
    out = Path(args.out)
    print((out / "accuracy.md").read_text())
    print(f"wrote {out / 'accuracy.json'}, {out / 'accuracy.md'}, {out / 'success_curve.png'}, "
          f"{out / 'gallery.png'}")
    return 0


# --- bench speed ------------------------------------------------------------------------------
def _speed_arguments(parser) -> None:
    # models.speed imports torch: only once this parser is built, not on import
    from soundlens.models.speed import METHODS

    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated (default {','.join(METHODS)})")
    parser.add_argument("--batch", default="1,16", metavar="B,B", help="batch sizes (default 1,16)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, the cores)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--backend", default="eager", metavar="B[,B]",
                        help="inference forms to time: eager (BatchNorm folded, cached front-end, "
                             "inference mode) and/or onnxruntime (default eager)")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the plain eager reference (unoptimised path) in the same "
                             "run (default on)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per form (default 5)")
    parser.add_argument("--encoder", default=None, help="trunk for every method (default: each paper's)")
    parser.add_argument("--no-stages", dest="stages", action="store_false", help="skip the per-stage pass")
    parser.add_argument("--out", metavar="JSON", default=None,
                        help="write the report here (and a .md beside it)")


def _run_speed(args) -> int:
    # torch, not on import (as in _speed_arguments)
    from soundlens.models.speed import SpeedConfig, bench_speed, markdown

    try:
        batches = tuple(int(b) for b in args.batch.split(",") if b.strip())
    except ValueError:
        raise SoundLensError("--batch takes comma-separated integers (e.g. 1,16), "
                             f"got '{args.batch}'") from None
    if not batches or min(batches) < 1 or args.repeats < 1:
        raise SoundLensError("--batch sizes and --repeats must be >= 1")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    backends = tuple(b.strip() for b in args.backend.split(",") if b.strip())
    flags = f"--methods {','.join(methods)} --batch {','.join(map(str, batches))} --device {args.device} " \
            f"--backend {','.join(backends)} --repeats {args.repeats}" + (" --reference" if args.reference
                                                                          else "")
    if args.threads:
        flags += f" --threads {args.threads}"
    if args.encoder:
        flags += f" --encoder {args.encoder}"
    if not args.stages:
        flags += " --no-stages"
    config = SpeedConfig(methods=methods, batches=batches, threads=args.threads, device=args.device,
                         backends=backends, reference=args.reference, repeats=args.repeats,
                         stages=args.stages, options={"encoder": args.encoder} if args.encoder else {},
                         command="soundlens bench speed " + flags)

    def progress(row) -> None:
        if "unavailable" in row:
            print(f"{row['method']} b{row['batch']} {row['form']}: unavailable ({row['unavailable']})",
                  flush=True)
            return
        x = row["speedup_vs_reference"]
        print(f"{row['method']} b{row['batch']} {row['form']}: {row['total_ms']['median']:g} ms, "
              f"{row['clips_per_s']:g} clips/s, map diff {row['max_map_diff']:.1e}"
              + (f", x{x:g} vs reference" if x else ""), flush=True)

    report = bench_speed(config, on_row=progress)
    table = markdown(report)
    print(table)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(f"`{report['command']}`\n\n{table}\n")
        print(f"wrote {path}, {path.with_suffix('.md')}")
    bad = [r for r in report["results"] if not r.get("equal_to_1e-4", True)]
    if bad:
        print("maps differ from the eager float32 model by more than 1e-4: "
              + ", ".join(f"{r['method']} b{r['batch']} {r['form']}" for r in bad))
        return 1
    return 0


# sub-subcommand -> (add its arguments, run it, summary)
BENCHES: dict[str, tuple] = {
    "live": (_live_arguments, _run_live, "heatmaps/s, capture->publish latency and CPU of the live pipeline"),
    "accuracy": (_accuracy_arguments, _run_accuracy,
                 "train each method with one budget on the procedural benchmark; cIoU/AUC/R@K table + plots"),
    "speed": (_speed_arguments, _run_speed,
              "forward time per method and stage, throughput, memory and map agreement against a plain "
              "eager reference"),
}
