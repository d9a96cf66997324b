"""Accuracy benchmark from a checkout: `python bench/bench_accuracy.py --methods ezvsl,lvs [--pairs N] [--epochs E] [--out DIR]`.

The same as `soundlens bench accuracy` (see `--help` and docs/benchmarks.md).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.main import main  # noqa: E402  (after the path fix, so it runs uninstalled)

if __name__ == "__main__":
    sys.exit(main(["bench", "accuracy", *sys.argv[1:]]))
