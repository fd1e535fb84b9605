"""Print PrepareImage's fast path against the plain one, per input (radstream.bench.preprocess).

Usage: python benchmarks/bench_preprocess.py [--size 2048] [--repeat 5]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from radstream.bench.preprocess import DEFAULT_SIZE, format_table, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the generated inputs")
    parser.add_argument("--repeat", type=int, default=5, help="runs per path and input")
    args = parser.parse_args()
    print(format_table(run(size=args.size, repeat=args.repeat)))


if __name__ == "__main__":
    main()
