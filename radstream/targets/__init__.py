"""Where RadStream runs: the local sandbox or a real AWS account, behind one interface (base.Target).

This is the one place that reads `target:` from the config; everything else asks the target."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radstream.config import LoadedConfig
    from radstream.targets.base import Target


def target_for(loaded: LoadedConfig) -> Target:
    if loaded.settings.target == "aws":
        from radstream.targets.aws import AwsTarget

        return AwsTarget(loaded)
    from radstream.targets.sandbox import SandboxTarget

    return SandboxTarget(loaded)
