"""Test support: watch one boto3 client's mutating calls with the product's own counter."""

from __future__ import annotations

from typing import Any

from radstream.counters import MutationCounter


def record_mutations(client: Any) -> list[str]:
    """The returned list grows with each successful mutating call's operation name, in order."""
    counter, names = MutationCounter(), []

    def hook(model: Any = None, **kwargs: Any) -> None:
        before = counter.total
        counter.botocore_hook(model=model, **kwargs)
        if counter.total > before:
            names.append(model.name)

    client.meta.events.register("after-call.*.*", hook)
    return names
