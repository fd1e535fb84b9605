"""Run one of the plan's A/B tests (radstream ab NAME) on a fresh sandbox deployment.

Usage: python benchmarks/ab.py [--project DIR] [--keep] batch|lambda-memory|autoscaling [--burst 20] [--json]"""

from __future__ import annotations

import sys

from deployed_sandbox import main

if __name__ == "__main__":
    sys.exit(main(["ab"], __doc__ or ""))
