"""Run the real `radstream` CLI in this process and SIGKILL it right after a successful mutating call.

usage: python -m tests.support.crash_harness --ledger FILE [--reference FILE] [--record] [--phases 0,1]
                                             [--each point|call] -- <radstream arguments>

No product hook: the harness wraps `MutationCounter.record`, which the product calls once a mutating
AWS call (botocore after-call hook) or Kubernetes write (its ApiClient) has answered with success.

A mutation point is (phase, step, call, ident) — ident hashes the call's scalar parameters (bucket,
key, role name…) or the Kubernetes path, so the same call on another resource is another point.

- `--record`: never kill; append every mutation point to the ledger (a reference run).
- otherwise: die after the first mutation point not yet in the ledger's kills, and append it there
  first. `--reference` (a recorded ledger) bounds kills per (phase, step, call) to how often a clean
  run makes that call: a step that redoes a call with fresh random parameters (a probe with a new id)
  cannot loop forever. Run again and again until a run completes: every mutation point of the
  command is then, in turn, the one a run died after.
- `--each call` kills once per (phase, step, call) instead of once per point: the cheaper sample
  (the fourth bucket's PutBucketPolicy behaves as the first's).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

_local = threading.local()


def read_ledger(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def triple(point: dict[str, Any]) -> tuple[Any, Any, str]:
    return point["phase"], point["step"], point["call"]


def _append(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _ident(values: Any) -> str:
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Policy:
    """Decides, for each successful mutation, whether this run dies now."""

    def __init__(self, ledger: Path, reference: Path | None, record: bool, phases: set[int] | None,
                 each: str = "point"):
        self.ledger, self.record, self.phases, self.each = ledger, record, phases, each
        kills = [e["point"] for e in read_ledger(ledger) if e["event"] == "kill"]
        self.killed = {json.dumps(p, sort_keys=True) for p in kills}
        self.kills_per_call = Counter(triple(p) for p in kills)
        self.budget = Counter(triple(e["point"]) for e in read_ledger(reference)) if reference else None
        self.phase: int | None = None
        self.step: str | None = None
        self._lock = threading.Lock()

    def mutated(self, call: str, ident: str) -> None:
        point = {"phase": self.phase, "step": self.step, "call": call, "ident": ident}
        with self._lock:
            if self.record:
                _append(self.ledger, {"event": "mutation", "point": point})
                return
            if not self._eligible(point):
                return
            _append(self.ledger, {"event": "kill", "point": point})
            # stdout/stderr are unbuffered enough: the parent only needs the ledger and the signal.
            os.kill(os.getpid(), signal.SIGKILL)

    def _eligible(self, point: dict[str, Any]) -> bool:
        if self.phases is not None and point["phase"] not in self.phases:
            return False
        if json.dumps(point, sort_keys=True) in self.killed:
            return False
        if self.each == "call" and self.kills_per_call[triple(point)]:
            return False
        return self.budget is None or self.kills_per_call[triple(point)] < self.budget[triple(point)]


def install(policy: Policy) -> None:
    """Patch the counter, the reporter (to know the current step) and the kubernetes client."""
    import kubernetes.client

    from radstream import context as context_mod
    from radstream.counters import MutationCounter
    from radstream.reporting import RichReporter

    original_step_started = RichReporter.step_started

    def step_started(self, number: int, step: str) -> None:
        policy.phase, policy.step = number, step
        original_step_started(self, number, step)

    RichReporter.step_started = step_started

    original_session = context_mod.Context.__dict__["boto_session"].func

    def capture_params(params=None, model=None, **_: Any) -> None:
        # after-call does not carry the request parameters: remember them for record().
        scalars = {k: v for k, v in (params or {}).items() if isinstance(v, (str, int, float, bool))}
        _local.aws_ident = _ident(scalars)

    def boto_session(self):
        session = original_session(self)
        session.events.register_first("before-parameter-build", capture_params)
        return session

    patched = functools.cached_property(boto_session)
    patched.__set_name__(context_mod.Context, "boto_session")
    context_mod.Context.boto_session = patched

    original_record = MutationCounter.record

    def record(self, key: str) -> None:
        original_record(self, key)
        ident = getattr(_local, "kube_ident", "") if key.startswith("k8s:") else getattr(_local, "aws_ident", "")
        policy.mutated(key, ident)

    MutationCounter.record = record

    original_call_api = kubernetes.client.ApiClient.call_api

    def call_api(self, method, url, *args, **kwargs):
        # The product counts a Kubernetes write once its 2xx answer is back: remember which it was.
        path = url.split("://", 1)[-1].partition("/")[2].partition("?")[0]
        _local.kube_ident = _ident([method.upper(), path])
        return original_call_api(self, method, url, *args, **kwargs)

    kubernetes.client.ApiClient.call_api = call_api


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="crash_harness")
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--phases", help="comma-separated phases whose mutations may be kill points")
    parser.add_argument("--each", choices=("point", "call"), default="point")
    args = parser.parse_args(argv[:split])
    phases = {int(p) for p in args.phases.split(",")} if args.phases else None
    install(Policy(args.ledger, args.reference, args.record, phases, args.each))

    from radstream.cli import main as cli_main

    sys.argv = ["radstream", *argv[split + 1:]]
    try:
        cli_main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
