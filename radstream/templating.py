"""`${Name}` placeholders in the shipped manifests (IAM, ASL, Kubernetes), filled in one way for all."""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace ${Name} placeholders in a manifest. Other dollar signs (JSONPath "$.x") are left
    alone; an unknown ${Name} raises KeyError rather than shipping a literal placeholder."""
    return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], text)
