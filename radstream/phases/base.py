"""The phase contract: a phase is an ordered list of steps; each step can check, plan, apply, verify
and destroy itself against the real world. The engine (radstream.engine) drives them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radstream.context import Context


@dataclass(frozen=True)
class Change:
    """One thing apply would do, shown by `radstream plan` and `--dry-run`."""

    action: str  # create | update | delete | replace | run
    resource: str  # e.g. "s3 bucket", "iam role", "k8s deployment"
    name: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class Step:
    """One idempotent unit of work. Subclasses override what they need.

    - check: read-only; True when the world is already as desired (the step is then skipped).
    - plan: what apply would change; only called when check is False.
    - apply: make it so, safe to re-run after a crash at any point. May return outputs (a dict)
      that the engine merges into the phase's outputs in the state file.
    - verify: the post-condition read from the real world; raise VerifyFailed when it does not hold.
    - outputs: read-only; what later phases need (names, ARNs, URLs). Recorded whether the step
      was applied or found already done, so a lost state file or an adopted resource still yields them.
    - destroy: undo; silent when already gone.
    """

    name: str = "step"
    description: str = ""

    def check(self, ctx: Context) -> bool:
        return False

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("run", "step", self.name, self.description)]

    def apply(self, ctx: Context) -> dict[str, Any] | None:
        return None

    def verify(self, ctx: Context) -> None:
        return None

    def outputs(self, ctx: Context) -> dict[str, Any] | None:
        return None

    def destroy(self, ctx: Context) -> None:
        return None


class DriftStep(Step):
    """A step whose desired state is a list of resources, each with a read-only drift report."""

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        """[(resource kind, name, drift)] — an empty drift means that resource is as desired."""
        raise NotImplementedError

    def check(self, ctx: Context) -> bool:
        return not any(drift for _, _, drift in self.drifts(ctx))

    def plan(self, ctx: Context) -> list[Change]:
        return [
            Change("create" if "missing" in drift else "update", kind, name, ", ".join(drift))
            for kind, name, drift in self.drifts(ctx)
            if drift
        ]

    def verify(self, ctx: Context) -> None:
        wrong = [f"{kind} {name}: {', '.join(drift)}" for kind, name, drift in self.drifts(ctx) if drift]
        if wrong:
            raise VerifyFailed("still not as desired after apply: " + "; ".join(wrong))


class Phase:
    """A numbered phase of the project plan."""

    number: int = -1
    name: str = "phase"
    summary: str = ""
    # Phases whose code has not landed yet say so honestly instead of pretending.
    implemented: bool = True

    def steps(self, ctx: Context) -> list[Step]:
        return []


class VerifyFailed(Exception):
    """A step's post-condition does not hold in the real world."""


class PhaseNotImplemented(Exception):
    """The phase is registered but its code has not been built yet."""
