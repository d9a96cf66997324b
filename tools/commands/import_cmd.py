"""`soundlens import`: an official release's checkpoint -> a SoundLens .safetensors checkpoint."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    # importers imports torch (and the registry's methods): only once this parser is built, not on import
    from soundlens.models.importers import official_sources

    parser.add_argument("--from", dest="source", required=True, choices=sorted(official_sources()),
                        help="the official release the checkpoint comes from (see docs/import.md)")
    parser.add_argument("src", help="official checkpoint (.pth / .pth.tar / .ckpt), read weights-only")
    parser.add_argument("-o", "--output", required=True, help="SoundLens checkpoint to write (.safetensors)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="import even if keys are missing, unexpected or reshaped (listed on stderr); "
                             "absent weights keep their random initialisation")


def run(args) -> int:
    # torch, not on import (as in add_arguments)
    from soundlens.models.importers import import_official

    result = import_official(args.source, args.src, args.output, allow_missing=args.allow_missing)
    for kind, keys in (("missing", result.missing), ("unexpected", result.unexpected),
                       ("other shape", result.mismatched)):
        for key in keys:
            print(f"soundlens import: warning: {kind}: {key}", file=sys.stderr)
    print(f"wrote {result.path} (method {result.method}, {result.loaded} tensors from {args.src})")
    return 0
