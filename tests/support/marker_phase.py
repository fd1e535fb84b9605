"""A phase whose "world" is a directory of marker files, so engine behaviour (resume, skip, drift,
destroy) can be tested in real processes without any cloud. Test support only."""

from __future__ import annotations

import time
from pathlib import Path

from radstream.phases.base import Change, Phase, Step, VerifyFailed


class MarkerStep(Step):
    def __init__(self, world: Path, name: str, pause: float = 0.0):
        self.world, self.name, self.pause = world, name, pause

    @property
    def marker(self) -> Path:
        return self.world / f"{self.name}.exists"

    def check(self, ctx) -> bool:
        return self.marker.exists()

    def plan(self, ctx) -> list[Change]:
        return [Change("create", "marker", self.name)]

    def apply(self, ctx):
        # Counts like a mutating cloud call, and leaves a trace of every attempt.
        with open(self.world / "applies.log", "a") as log:
            log.write(self.name + "\n")
        (self.world / f"{self.name}.started").touch()
        time.sleep(self.pause)
        ctx.counter.record(f"marker:{self.name}")
        self.marker.touch()
        return {f"{self.name}_output": f"value-of-{self.name}"}

    def verify(self, ctx) -> None:
        if not self.marker.exists():
            raise VerifyFailed(f"{self.marker} is missing after apply")

    def destroy(self, ctx) -> None:
        self.marker.unlink(missing_ok=True)


class MarkerPhase(Phase):
    number = 0
    name = "markers"

    def __init__(self, world: Path, steps: tuple[str, ...] = ("alpha", "beta", "gamma"), slow: str | None = None, pause: float = 0.0):
        self.world, self.step_names, self.slow, self.pause = world, steps, slow, pause

    def steps(self, ctx) -> list[Step]:
        return [MarkerStep(self.world, n, self.pause if n == self.slow else 0.0) for n in self.step_names]
