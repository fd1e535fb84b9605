"""Print the inference benchmark table: onnxruntime in-process versus local Triton (HTTP binary, gRPC).

Usage: python benchmarks/bench_inference.py [--seconds 3] [--repo model_repo]
Builds the default model repository first when it is missing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radstream.bench.inference import format_table, run  # noqa: E402
from radstream.inference.model import MODEL_NAME  # noqa: E402
from radstream.inference.repository import build_repository, versions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per row")
    parser.add_argument("--repo", type=Path, default=ROOT / "model_repo", help="model repository")
    args = parser.parse_args()
    if not versions(args.repo / MODEL_NAME):
        build_repository(args.repo)
    print(format_table(run(args.repo, seconds=args.seconds)))


if __name__ == "__main__":
    main()
