"""`soundlens data`: dataset utilities.

    soundlens data check-split TRAIN_LIST --test TEST_LIST   test clips inside a training list
    soundlens data prepare VIDEOS_DIR OUT_ROOT [--workers N] [--frames K] [--rate 16000]
                                                             videos -> frames/ + audio/ (official layout)
    soundlens data neighbours SPEC (--checkpoint CKPT | --image-encoder F --audio-encoder F) [--k 10]
                                                      SSL-Align's conceptual positives -> SPEC/neighbours.npz
"""

from __future__ import annotations

import os

from soundlens.models.errors import SoundLensError


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = sub.add_parser("check-split", help="count training ids that are also test ids (leakage)",
                           description="Count training ids that are also test ids, after normalising every "
                                       "list form (id lines, id,int CSV, <id>.jpg, <id>.mp4,label, "
                                       "vggss.json, <ytid>_<start_ms>_<end_ms>).")
    check.add_argument("train_list", metavar="TRAIN_LIST", help="training id list")
    check.add_argument("--test", required=True, metavar="TEST_LIST", help="test id list (e.g. vggss.json)")
    check.add_argument("--write-clean", metavar="OUT",
                       help="write TRAIN_LIST minus the test ids, same format")
    check.add_argument("--examples", type=int, default=10, help="overlapping ids to print (default 10)")
    check.add_argument("--strict", action="store_true", help="exit with status 1 when any id overlaps")
    prepare = sub.add_parser(
        "prepare", help="decode videos into frames/<id>.jpg + audio/<id>.wav (the official layout)",
        description="Decode each video with PyAV: the middle frame -> OUT_ROOT/frames/<id>.jpg, "
                    "the soundtrack -> OUT_ROOT/audio/<id>.wav (mono, 16-bit). Resumable: finished ids are "
                    "skipped. Failed videos (corrupt, truncated, no audio) are listed in "
                    "OUT_ROOT/prepare_report.json; complete ids in OUT_ROOT/prepared.txt.")
    prepare.add_argument("videos_dir", metavar="VIDEOS_DIR", help="folder of videos (searched recursively)")
    prepare.add_argument("out_root", metavar="OUT_ROOT", help="output dataset folder")
    prepare.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                         help="decoding processes")
    prepare.add_argument("--frames", type=int, default=1,
                         help="key frames per video (default 1: the middle frame; K > 1 also writes "
                              "keyframes/<id>/)")
    prepare.add_argument("--rate", type=int, default=16000, help="wav sample rate in Hz (default 16000)")
    prepare.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    neigh = sub.add_parser(
        "neighbours",
        help="mine each clip's top-k neighbours per modality (SSL-Align's conceptual positives)",
        description="Embed every clip of SPEC with the encoder you name and store each clip's k nearest "
                    "neighbours per modality (cosine) in SPEC/neighbours.npz, where 'soundlens "
                    "train --method sslalign' finds it (paper 2 §3.2).")
    neigh.add_argument("spec", metavar="SPEC",
                       help="prepared folder (frames/ + audio/), optionally ',list=FILE'")
    neigh.add_argument("--checkpoint", help="a SoundLens checkpoint whose embed() mines the neighbours")
    neigh.add_argument("--image-encoder", help="local image-trunk weights (e.g. torchvision resnet18 .pth)")
    neigh.add_argument("--audio-encoder", help="local audio-trunk weights")
    neigh.add_argument("--arch", default="resnet18",
                       help="trunk of the encoder files: resnet18 (default) or lite")
    neigh.add_argument("--k", type=int, default=10, help="neighbours per clip (default 10)")
    neigh.add_argument("-o", "--out", help="index file (default SPEC/neighbours.npz)")
    neigh.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.set_defaults(_data_parser=parser)


def run(args) -> int:
    command = getattr(args, "data_command", None)
    if command == "prepare":
        return _run_prepare(args)
    if command == "neighbours":
        return _run_neighbours(args)
    if command != "check-split":
        args._data_parser.print_help()
        return 0
    from soundlens.training import splits  # dataclasses, json: only for check-split, not for --help

    train = splits.read_id_list(args.train_list)
    report = splits.check_split(train, args.test)
    print(f"train: {report.train} ({report.n_train_records} records, {report.n_train_unique} unique ids)")
    print(f"test:  {report.test} ({report.n_test_unique} unique ids)")
    share = 100.0 * report.n_overlap / max(report.n_train_unique, 1)
    print(f"overlap: {report.n_overlap} training ids are test ids ({share:.2f}% of the training ids)")
    if report.overlap and args.examples > 0:
        print("  e.g. " + ", ".join(report.overlap[: args.examples]))
    if args.write_clean:
        removed = splits.write_clean(train, set(report.overlap), args.write_clean)
        print(f"wrote {args.write_clean}: {removed} records removed, format kept")
    return 1 if args.strict and report.n_overlap else 0


def _run_prepare(args) -> int:
    # PyAV only for 'data prepare'
    from soundlens.training.prepare import PrepareConfig, prepare_videos

    config = PrepareConfig(frames=args.frames, rate=args.rate, workers=args.workers, progress=args.progress)
    result = prepare_videos(args.videos_dir, args.out_root, config)
    print(f"prepared {len(result.prepared)} videos, {len(result.already_done)} already done, "
          f"{len(result.failed)} failed -> {args.out_root}")
    for rec in result.failed:
        print(f"  failed: {rec['file']}: {rec['reason']}")
    print(f"list of complete ids: {result.list_path}; report: {result.report_path}")
    return 0


def _run_neighbours(args) -> int:
    # torch only for 'data neighbours'
    from soundlens.training.data import build_dataset, parse_spec
    from soundlens.training.neighbours import default_index_path, mine_neighbours

    spec = parse_spec(args.spec)
    if spec.kind == "procedural":
        raise SoundLensError("data neighbours needs a prepared folder; write procedural pairs to one first "
                             "('soundlens synth pairs --n N --out DIR')")
    dataset = build_dataset(spec)
    if not 1 <= args.k < len(dataset):
        raise SoundLensError(f"--k must be between 1 and {len(dataset) - 1} (the folder has "
                             f"{len(dataset)} clips)")
    index = mine_neighbours(dataset, k=args.k, checkpoint=args.checkpoint, image_encoder=args.image_encoder,
                            audio_encoder=args.audio_encoder, arch=args.arch, device=args.device)
    path = index.save(args.out or default_index_path(dataset))
    print(f"wrote {path}: {len(index)} clips x {args.k} neighbours per modality")
    return 0
