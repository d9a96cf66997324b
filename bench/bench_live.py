"""Live-pipeline benchmark from a checkout: `python bench/bench_live.py [--seconds 20] [--out r.json] ...`.

The same as `soundlens bench live` (see `--help`); kept here beside the other benchmark scripts.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.main import main  # noqa: E402  (after the path fix, so it runs uninstalled)

if __name__ == "__main__":
    sys.exit(main(["bench", "live", *sys.argv[1:]]))
