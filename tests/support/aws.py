"""Test support: watch one boto3 client's mutating calls with the product's own counter; step outside
the operator-policy check for a test's own calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

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


@contextmanager
def beyond_the_operator_policy() -> Iterator[None]:
    """For a test's own set-up or read-back through the operator's Context (disabling a rule to make
    drift, listing Athena's executions), which the product never calls and the policy need not grant."""
    from radstream.aws.operator_policy import CHECK_VARIABLE

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CHECK_VARIABLE, "0")
        yield
