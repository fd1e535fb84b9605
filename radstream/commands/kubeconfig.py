"""`radstream kubeconfig`: kubectl (and any client-go tool) on the target's cluster.

stdout is one line, `export KUBECONFIG=<abs path>`, so `eval "$(radstream kubeconfig)"` points the
shell at `.radstream/kubeconfig` (rewritten each time: the sandbox's port changes when it restarts).
`--merge` puts the entry into the user's kubeconfig instead and prints nothing on stdout; `--json`
prints {"ok", "path", "context", "cluster", "server"}. The hidden `kubeconfig token` is the exec credential
plugin the kubeconfig names (see radstream.kube.kubeconfig)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Annotated

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, emit, options, run_command

app = typer.Typer(invoke_without_command=True)


@app.callback()
def kubeconfig(
    ctx: typer.Context,
    merge: Annotated[bool, typer.Option(
        "--merge", help="Merge the entry into $KUBECONFIG's first file (default ~/.kube/config) and make it current.")] = False,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a kubeconfig for the target's cluster; `eval "$(radstream kubeconfig)"` makes kubectl use it."""
    if ctx.invoked_subcommand is not None:
        return
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream import config as config_mod
        from radstream.kube import kubeconfig as kc
        from radstream.session import open_context

        with open_context(opts, "kubeconfig", lock=False) as kctx:
            document = kc.build(kctx, config_mod.resolve_path(opts.config))
            path = kc.user_kubeconfig() if merge else kctx.state_dir / kc.KUBECONFIG_FILE
            if merge:
                kc.merge(path, document)
            else:
                kc.write(path, document)
        cluster = document["clusters"][0]
        result = {"ok": True, "path": str(path.resolve()), "context": document["current-context"],
                  "cluster": cluster["name"], "server": cluster["cluster"]["server"]}

        def render(r: dict) -> None:
            if merge:
                print(f"merged context {r['context']} into {r['path']} and made it current", file=sys.stderr)
            else:
                print(f"export KUBECONFIG={shlex.quote(r['path'])}")
                print(f"wrote {r['path']} (context {r['context']}); run: eval \"$(radstream kubeconfig)\"", file=sys.stderr)

        emit(result, opts.json, render)
        return 0

    run_command(opts, body)


@app.command(hidden=True)
def token(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Print an ExecCredential for the target's cluster (the kubeconfig's credential plugin)."""
    opts = options(ctx, config=config)

    def body() -> int:
        from radstream.kube.kubeconfig import exec_credential
        from radstream.session import open_context

        with open_context(opts, "kubeconfig token", lock=False) as tctx:
            print(json.dumps(exec_credential(tctx)))
        return 0

    run_command(opts, body)
