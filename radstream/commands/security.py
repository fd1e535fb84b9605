"""`radstream security test`: attack the public door (SQL injection, XSS, path traversal, a Log4j
lookup, an oversized body, a flood) and send it legitimate requests, then report what was blocked.
Thin: find the door in phase 3's outputs, run radstream.security_probes, render."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, emit, options, run_command, stderr_console

app = typer.Typer(help="Check the public door's defences.", no_args_is_help=True)

SANDBOX_GUARDDUTY_NOTE = "the sandbox's GuardDuty keeps no findings"


def _door_outputs(sctx: Any) -> tuple[str, str | None]:
    """(the door's URL, the CA to verify it against: None for the user's publicly trusted certificate)."""
    from radstream.errors import ConfigError

    if not sctx.config.expose.public:
        raise ConfigError("there is no public door to test: expose.public is off",
                          hint="set expose.public: true in radstream.yaml and run `radstream up`")
    recorded = sctx.outputs(3)
    endpoint = recorded.get("public_endpoint")
    own_certificate = sctx.config.expose.certificate_arn is None
    if not endpoint or (own_certificate and not recorded.get("ca_certificate")):
        raise ConfigError("phase 3 has not recorded a public door", hint="run `radstream up` first")
    return endpoint, recorded["ca_certificate"] if own_certificate else None


def _inference(endpoint: str, model: str, ca_file: str | None) -> Callable[[], Any]:
    def infer() -> Any:
        from radstream.inference.client import TritonClient
        from radstream.phases.p3_expose import smoke_input

        # No retries: each request the probe sends is one the door must answer.
        with TritonClient(endpoint, model=model, ca_file=ca_file, retries=0) as client:
            return client.infer(smoke_input())

    return infer


def _guardduty(sctx: Any) -> dict[str, Any] | None:
    detector_id = sctx.outputs(3).get("guardduty_detector_id")
    if not detector_id:
        return None
    if not sctx.target.guardduty_findings:
        return {"detector_id": detector_id, "findings": None, "note": SANDBOX_GUARDDUTY_NOTE}
    from botocore.exceptions import BotoCoreError, ClientError

    from radstream.aws.guardduty import findings_summary

    try:
        return findings_summary(sctx.client("guardduty"), detector_id)
    except (BotoCoreError, ClientError) as exc:
        # The probes' verdict stands without the findings; say why they are missing.
        return {"detector_id": detector_id, "findings": None, "error": str(exc)}


def _render(payload: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from radstream.security_probes import verdict

    console = stderr_console()
    table = Table(title=f"security test of {payload['endpoint']}", title_justify="left")
    for column in ("probe", "kind", "expected", "status", "result", "detail"):
        table.add_column(column)
    for probe in payload["probes"]:
        mark = "[green]pass[/]" if probe["passed"] else "[red]FAIL[/]"
        table.add_row(probe["name"], probe["kind"], probe["expected"], str(probe["status"] or "—"), mark,
                      escape(probe["detail"]))
    console.print(table)
    guardduty = payload["guardduty"]
    if guardduty is not None:
        if guardduty["findings"] is None:
            why = guardduty.get("note") or guardduty.get("error")
            console.print(f"GuardDuty {guardduty['detector_id']}: no findings read ({escape(str(why))})", highlight=False)
        else:
            bands = guardduty["by_severity"]
            console.print(f"GuardDuty {guardduty['detector_id']}: {guardduty['findings']} findings (high {bands['high']}, "
                          f"medium {bands['medium']}, low {bands['low']})", highlight=False)
            for finding in guardduty["top"]:
                console.print(f"  {finding['severity']:.1f} {escape(str(finding['type']))}: "
                              f"{escape(str(finding['title']))} [{escape(finding['resource'])}]", highlight=False)
    colour = "green" if payload["ok"] else "red"
    console.print(f"[{colour}]{escape(verdict(payload))}[/]", highlight=False)


@app.command("test")
def test(ctx: typer.Context, config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """Attack the public door and send it legitimate requests; exit 1 when an attack gets through or a
    legitimate request is refused. The flood comes last: the door then refuses this address for up
    to expose.rate_window_seconds."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream import security_probes as probes
        from radstream.session import open_context

        console = stderr_console()
        with open_context(opts, "security test", lock=False) as sctx:
            endpoint, ca_pem = _door_outputs(sctx)
            expose = sctx.config.expose
            with tempfile.TemporaryDirectory(prefix="radstream-door-") as scratch:
                ca_file = None
                if ca_pem is not None:
                    ca_file = str(Path(scratch) / "ca.crt")  # TritonClient reads its CA from a file
                    Path(ca_file).write_text(ca_pem)
                door = probes.Door(endpoint, probes.tls_context(ca_pem))
                results = probes.run_probes(
                    door, sctx.config.triton.model_name, expose.rate_limit, expose.rate_window_seconds,
                    _inference(endpoint, sctx.config.triton.model_name, ca_file),
                    announce=lambda name: console.print(f"[dim]probe {name}…[/]", highlight=False))
            payload = probes.report(endpoint, results, _guardduty(sctx))
        emit(payload, opts.json, _render)
        return 0 if payload["ok"] else 1

    run_command(opts, body)
