"""Live-pipeline benchmark from a checkout: `python bench/bench_live.py [--seconds 20] [--out r.json] ...`.

The same as `soundlens bench live` (see `--help`); kept here beside the other benchmark scripts.
"""

import sys

from soundlens.tools.main import main  # installed by `make setup` (editable)

if __name__ == "__main__":
    sys.exit(main(["bench", "live", *sys.argv[1:]]))
