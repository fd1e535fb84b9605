"""Run the real engine, state file and lock over a MarkerPhase in its own process, as the CLI would.

usage: python -m tests.support.run_engine CONFIG WORLD [SLOW_STEP PAUSE_SECONDS]
Prints the run result as one JSON object; exit codes as the CLI's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.errors import RadstreamError
from radstream.state import DeploymentLock, State
from tests.support.marker_phase import MarkerPhase


def main() -> int:
    config_path, world = Path(sys.argv[1]), Path(sys.argv[2])
    slow = sys.argv[3] if len(sys.argv) > 3 else None
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    try:
        loaded = config.load(config_path)
        with DeploymentLock(loaded.state_dir, "run_engine") as lock:
            if lock.taken_over:
                print(f"took over stale lock of PID {lock.taken_over['pid']}", file=sys.stderr)
            state = State.load(loaded.state_dir, loaded.settings.deployment, loaded.settings.target)
            ctx = Context(loaded, state)
            result = Engine(ctx, [MarkerPhase(world, slow=slow, pause=pause)]).run([0])
    except RadstreamError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return exc.exit_code
    print(json.dumps({"ok": result.ok, "mutations": result.mutations, "phases": [p.to_dict() for p in result.phases]}))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
