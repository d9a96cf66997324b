"""`soundlens models`: the registered methods with their presets; `--pretrained`: the official released
weights SoundLens imports; `soundlens models pull NAME`: download one and cache it for `--model NAME`."""

from __future__ import annotations

import dataclasses
import json

from soundlens import models
from soundlens.models.errors import SoundLensError


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--pretrained", action="store_true",
                        help="list the official released models ('soundlens models pull NAME' fetches one)")
    actions = parser.add_subparsers(dest="action", metavar="{pull}")
    pull = actions.add_parser("pull",
                              help="download a released model, import it and cache it for --model NAME",
                              description="Download a released model (see 'soundlens models --pretrained'), "
                                          "verify it, import it strictly and cache it; then --model NAME "
                                          "works everywhere.")
    pull.add_argument("name", help="a released model, e.g. sslalign-vggss144k")
    source = pull.add_mutually_exclusive_group()
    source.add_argument("--from", dest="src", metavar="FILE",
                        help="import this already-downloaded official file under NAME instead of downloading")
    source.add_argument("--url",
                        help="download the same release from this mirror instead of the official URL")
    pull.add_argument("--force", action="store_true", help="pull again even if NAME is already cached")
    pull.add_argument("--retries", type=int, default=3,
                      help="times to resume a download the network cuts off before giving up (default 3)")
    pull.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a try fails")
    pull.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    if getattr(args, "action", None) == "pull":
        return _pull(args)
    if args.pretrained:
        return _list_pretrained(args.json)

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
        print(f"{r['method']:<10} {r['encoder']:<13} {r['audio_preset']:<9} {r['image_preset']:<7} "
              f"{r['summary']}")
    print("\naudio presets (rate, seconds -> spectrogram):")
    for name, p in models.AUDIO_PRESETS.items():
        print(f"  {name:<9} {p.sample_rate} Hz, {p.input_seconds:g} s -> {p.shape[1]}x{p.shape[2]}")
    print("image presets: " + ", ".join(f"{n} ({p.size} px, {p.resize})"
                                        for n, p in models.IMAGE_PRESETS.items()))
    print("\nany method also runs with encoder=lite (CPU real time); 'soundlens localize --model default' "
          "uses the shipped model")
    return 0


def _pull(args) -> int:
    from soundlens.models import pretrained  # hashlib, download, registry: not for --help

    if args.retries < 0:
        raise SoundLensError("--retries must be 0 or more")
    cached = pretrained.cached_path(args.name)
    was_there = cached.is_file()
    path = pretrained.pull(args.name, src=args.src, url=args.url, force=args.force, retries=args.retries,
                           timeout=args.timeout, quiet=args.quiet)
    if was_there and not args.force:
        print(f"{args.name} is already pulled: {path} (--force pulls it again)")
    else:
        print(f"pulled {args.name} -> {path}")
    print(f"use it with --model {args.name}, e.g. 'soundlens live --camera 0 --mic default --model "
          f"{args.name} --view'")
    return 0


def _reported(rel) -> str:
    return "; ".join(f"{test} " + " ".join(f"{k} {v:.2f}" for k, v in m.items())
                     for test, m in rel.reported.items())


def _list_pretrained(as_json: bool) -> int:
    from soundlens.models import pretrained  # as in _pull

    rows = []
    for name, rel in sorted(pretrained.releases().items()):
        row = dataclasses.asdict(rel)
        row["pulled"] = pretrained.cached_path(name).is_file()
        rows.append(row)
    if as_json:
        print(json.dumps({"cache": str(pretrained.home()), "pretrained": rows}, indent=2))
        return 0
    print(f"{'name':<28} {'import':<9} {'pulled':<6} trained on -> reported (licence)")
    for r in rows:
        rel = pretrained.release(r["name"])
        print(f"{r['name']:<28} {r['importer']:<9} {'yes' if r['pulled'] else 'no':<6} {r['train_data']} -> "
              f"{_reported(rel) or 'no numbers in the README'} ({r['licence']})")
        where = r["url"] + (f"  [file {r['file']}]" if r["file"] else "")
        print(f"{'':<28} source: {where}  ({r['readme']})")
    print(f"\ncache: {pretrained.home()} (SOUNDLENS_HOME overrides). 'soundlens models pull NAME' "
          "downloads one; then --model NAME works in live, analyze, localize, eval and demo.")
    return 0
