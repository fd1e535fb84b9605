"""`radstream render`: read what only the target knows (the account, the pushed image, the layer's
version), then write every document of radstream.documents for one project into a folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.documents import Facts, render, write

if TYPE_CHECKING:
    from radstream.context import Context


def facts(ctx: Context) -> Facts:
    from radstream.aws.acm import deployment_certificates
    from radstream.aws.lambda_ import newest_layer_version
    from radstream.phases.p0_foundation import function_vpc
    from radstream.phases.p2_triton import image_tag, model_repository, pushed_image, registry

    repository = model_repository(ctx)
    image = pushed_image(ctx) or f"{registry(ctx).repository}:{image_tag(ctx)}"
    certificates = deployment_certificates(ctx.client("acm"), ctx.names.deployment)
    return Facts(image, newest_layer_version(ctx.client("lambda"), ctx.names.lambda_layer), repository,
                 certificate_arn=certificates[0] if certificates else None, function_vpc=function_vpc(ctx))


def render_project(config_path: Path | None, target: str | None, out: Path, verbose: int = 0) -> dict[str, Any]:
    """Render the deployment of the config at `config_path` (on `target` when given) into `out`. The
    account comes from STS: the sandbox target starts the sandbox when it is not running, as `plan` does."""
    from radstream import config as config_mod
    from radstream.context import Context
    from radstream.reporting import RichReporter
    from radstream.state import STATE_FILE, State, empty_state

    loaded = config_mod.load(config_path, {**os.environ, "RADSTREAM_TARGET": target} if target else None)
    settings = loaded.settings
    # Render reads nothing of the state, which belongs to one target, while render may preview the other.
    state = State(loaded.state_dir / STATE_FILE, empty_state(settings.deployment, settings.target))
    reporter = RichReporter(verbose)
    try:
        ctx = Context(loaded, state, reporter)
        ctx.ensure_target_running()
        files = write(out, render(ctx.names, settings, ctx.root, facts(ctx)))
    finally:
        reporter.close()
    return {"ok": True, "out": str(out), "files": files, "target": settings.target}
