"""Print the sandbox's path against its floor (radstream bench pipeline) on a fresh sandbox deployment.

Usage: python benchmarks/bench_pipeline.py [--project DIR] [--keep] [--studies 20] [--burst 50] [--json]"""

from __future__ import annotations

import sys

from deployed_sandbox import main

if __name__ == "__main__":
    sys.exit(main(["bench", "pipeline"], __doc__ or ""))
