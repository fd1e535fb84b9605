"""The benchmarks' plain-text tables: one layout for all of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any, digits: int = 1) -> str:
    """A figure as a table shows it: "-" for none, floats to `digits` places."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(columns: Sequence[tuple[str, int]], rows: Iterable[Sequence[Any]], indent: str = "") -> list[str]:
    """Header, rule and one line per row: the first column left-aligned to its width, the others
    right-aligned to theirs; values that are not text go through `cell`."""
    def line(values: Sequence[Any]) -> str:
        texts = [v if isinstance(v, str) else cell(v) for v in values]
        first, *rest = zip(texts, (width for _, width in columns), strict=True)
        return indent + f"{first[0]:<{first[1]}}" + "".join(f"{text:>{width}}" for text, width in rest)

    header = line([name for name, _ in columns])
    return [header, indent + "-" * (len(header) - len(indent)), *(line(row) for row in rows)]
