"""Accuracy benchmark from a checkout: `python bench/bench_accuracy.py --methods ezvsl,lvs [--pairs N]
[--epochs E] [--out DIR]`.

The same as `soundlens bench accuracy` (see `--help` and docs/benchmarks.md).
"""

import sys

from soundlens.tools.main import main  # installed by `make setup` (editable)

if __name__ == "__main__":
    sys.exit(main(["bench", "accuracy", *sys.argv[1:]]))
