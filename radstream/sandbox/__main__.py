"""`python -m radstream.sandbox --state-dir DIR`: run the sandbox daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from radstream.sandbox.daemon import serve
    from radstream.sandbox.services import SandboxOptions

    parser = argparse.ArgumentParser(prog="python -m radstream.sandbox", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, help="where sandbox.json, the pidfile and logs/ live")
    parser.add_argument("--region", default="us-east-1", help="the region the Firehose pump watches")
    parser.add_argument("--aws-endpoint-url", help="use this AWS emulator instead of the embedded moto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the log
    return serve(SandboxOptions(state_dir=args.state_dir, region=args.region, aws_endpoint_url=args.aws_endpoint_url))


if __name__ == "__main__":
    sys.exit(main())
