"""Least privilege and leak checks: IAM policies rendered for a test deployment (no wildcard action,
every resource this deployment's, clean under parliament), Kubernetes manifests (valid under
kubernetes-validate, clean under checkov), the ASL (valid under statelint), no secret in the state,
logs or CLI output of an `up`, and the sandbox's servers on loopback only. Teardown leaving other
resources alone is proved in test_crash_resume.py; TLS-only buckets and their public access block
in tests/integration/test_phase0_sandbox.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import REPO
from tests.prove.support import run

DEPLOYMENT = "rs-lp-q7"  # distinctive, so "the ARN names this deployment" cannot hold by accident
ACCOUNT, REGION = "123456789012", "us-east-1"
IAM_DIR = REPO / "manifests" / "iam"


def variables() -> dict[str, str]:
    from radstream.names import Names
    from radstream.phases.p0_foundation import template_variables

    return template_variables(SimpleNamespace(names=Names(DEPLOYMENT, ACCOUNT, REGION)))


def identity_policies() -> dict[str, dict]:
    from radstream.aws.iam import ROLE_PURPOSES, role_documents

    found = {}
    for purpose in ROLE_PURPOSES:
        _, policy = role_documents(IAM_DIR, purpose, variables())
        if policy is not None:
            found[purpose] = policy
    return found


def resource_policies() -> dict[str, dict]:
    from radstream.aws.iam import render_document
    from radstream.aws.s3 import tls_only_policy

    found = {"events-to-logs": render_document(IAM_DIR / "events-to-logs.resource-policy.json", variables())}
    for kind in ("Images", "Results", "Telemetry", "Artifacts"):
        found[f"bucket {kind.lower()}"] = tls_only_policy(variables()[f"{kind}Bucket"])
    return found


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# Resources that cannot carry a deployment's name, each required by AWS as it is:
SCOPE_EXCEPTIONS = {
    # Glue authorises every table call against the account's one Data Catalog as well as the table.
    f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog",
    # Every Glue crawler logs to this AWS-named group; the stream inside it is scoped to ours.
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/crawlers",
}
# ecr:GetAuthorizationToken has no resource type: IAM only accepts "*" for it (documented in the
# EKS node role). It yields a registry login; what can be pulled is scoped by the repository ARN.
STAR_RESOURCE_ACTIONS = {"ecr:GetAuthorizationToken"}


def test_iam_grants_no_wildcard_action_and_only_this_deployments_resources():
    own_names = [DEPLOYMENT, DEPLOYMENT.replace("-", "_"), *(variables()[f"{k}Bucket"] for k in
                                                            ("Images", "Results", "Telemetry", "Artifacts"))]
    checked = 0
    for name, document in {**identity_policies(), **resource_policies()}.items():
        for statement in statements(document):
            if statement["Effect"] != "Allow":
                continue
            actions = as_list(statement["Action"])
            assert not [a for a in actions if a == "*" or a.endswith(":*") or "*" in a], (name, actions)
            for resource in as_list(statement["Resource"]):
                checked += 1
                if resource == "*":
                    assert set(actions) <= STAR_RESOURCE_ACTIONS, (name, actions)
                    continue
                assert resource in SCOPE_EXCEPTIONS or any(own in resource for own in own_names), \
                    f"{name}: {resource} is not scoped to deployment {DEPLOYMENT}"
    assert checked >= 40


def test_trust_policies_admit_one_aws_service_to_assume_the_role():
    from radstream.aws.iam import ROLE_PURPOSES, role_documents

    for purpose in ROLE_PURPOSES:
        trust, _ = role_documents(IAM_DIR, purpose, variables())
        for statement in statements(trust):
            assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole", purpose
            services = as_list(statement["Principal"]["Service"])
            assert list(statement["Principal"]) == ["Service"] and len(services) == 1, purpose
            assert services[0].endswith(".amazonaws.com"), purpose


def parliament_findings(document: dict) -> list[tuple[str, str]]:
    from parliament import analyze_policy_string

    policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
    return [(finding.issue, str(finding.detail)) for finding in policy.findings]


def test_parliament_finds_nothing_in_the_policies():
    # parliament audits identity policies and resource policies with a Resource; trust policies have
    # none by design (see the test above for them).
    found = {}
    for name, document in {**identity_policies(), **resource_policies()}.items():
        findings = parliament_findings(document)
        if name == "eks-nodes":
            # The community auditor flags ecr:GetAuthorizationToken as exposing credentials: it is
            # the registry login nodes need to pull the serving image (the STAR_RESOURCE_ACTIONS case).
            findings = [f for f in findings if f[0] != "CREDENTIALS_EXPOSURE"]
        if findings:
            found[name] = findings
    print(f"\nparliament: {sum(map(len, found.values()))} findings in "
          f"{len(identity_policies()) + len(resource_policies())} policies")
    assert found == {}


def test_parliament_does_find_a_wildcard_policy():
    """The checker is alive: the same call flags what this project must never write."""
    issues = {issue for issue, _ in parliament_findings(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})}
    assert issues


# -- Kubernetes -------------------------------------------------------------------------------------
def rendered_manifests(tmp_path: Path) -> list[dict]:
    from radstream import config as config_mod
    from radstream.kube import manifests

    (tmp_path / "radstream.yaml").write_text(f"target: aws\ndeployment: {DEPLOYMENT}\n")
    settings = config_mod.load(tmp_path / "radstream.yaml", environ={}).settings
    directory = manifests.template_dir(REPO)
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{DEPLOYMENT}-triton@sha256:{'0' * 64}"
    return [manifests.namespace(settings, directory), *manifests.workloads(settings, directory, image),
            manifests.service(settings, directory), manifests.device_plugin(settings, directory)]


def test_kubernetes_manifests_are_valid_for_the_cluster_version(tmp_path: Path):
    import kubernetes_validate

    objects = rendered_manifests(tmp_path)
    assert {o["kind"] for o in objects} == {"Namespace", "Deployment", "PodDisruptionBudget",
                                             "HorizontalPodAutoscaler", "Service", "DaemonSet"}
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)  # raises on the first schema error


# Each skipped check, and why it does not apply.
CHECKOV_SKIPS = {
    # Triton runs as the NGC image's own `triton-server` user (UID 1000), which owns its files.
    "CKV_K8S_40",
    # Triton is reached through its LoadBalancer Service by the pipeline's Lambdas, outside the
    # cluster; EKS enforces NetworkPolicy only with the VPC CNI's policy agent, not enabled here.
    "CKV2_K8S_6",
}
# NVIDIA's device plugin DaemonSet (GPU nodegroups only) is NVIDIA's manifest: it must be privileged
# on the host to expose the GPUs, so the pod-hardening checks cannot pass by design. It is still
# schema-validated above.
CHECKOV_SKIPPED_OBJECTS = {"DaemonSet"}


def test_kubernetes_manifests_are_clean_under_checkov(tmp_path: Path):
    import yaml

    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (it needs its own venv: its pins clash with boto3's)")
    directory = tmp_path / "k8s"
    directory.mkdir()
    scanned = [o for o in rendered_manifests(tmp_path) if o["kind"] not in CHECKOV_SKIPPED_OBJECTS]
    for index, obj in enumerate(scanned):
        (directory / f"{index}-{obj['kind']}.yaml").write_text(yaml.safe_dump(obj))
    proc = subprocess.run([checkov, "-d", str(directory), "--framework", "kubernetes", "--output", "json",
                           "--compact", "--skip-check", ",".join(sorted(CHECKOV_SKIPS))],
                          capture_output=True, text=True, timeout=300, check=False)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [(c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    print(f"\ncheckov: {len(failed)} failed, {passed} passed, {len(CHECKOV_SKIPS)} checks skipped")
    assert passed > 20 and failed == []


def test_pipeline_asl_is_valid_under_statelint():
    from statelint.linter import Linter

    from radstream.aws.lambda_ import function_arn
    from radstream.aws.stepfunctions import render_definition
    from radstream.names import LAMBDA_FUNCTIONS, Names

    names = Names(DEPLOYMENT, ACCOUNT, REGION)
    arns = {fn: function_arn(REGION, ACCOUNT, names.lambda_function(fn)) for fn in LAMBDA_FUNCTIONS}
    definition = render_definition(REPO / "manifests" / "stepfunctions" / "pipeline.asl.json", arns)
    assert Linter.validate(definition) == []
    assert Linter.validate({"StartAt": "Nowhere", "States": {}})  # the checker is alive


# -- a real deployment: secrets and sockets --------------------------------------------------------
SECRET_PATTERNS = (
    re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(rb"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}"),
    re.compile(rb'(?i)"[a-z_]*(?:password|secret_access_key|secretaccesskey|token)"\s*:\s*"(?!<redacted>)[^"]+"'),
    re.compile(rb"(?i)(?:password|passwd)\s*[=:]\s*\S+"),
)


@pytest.mark.slow
def test_no_secret_in_state_logs_or_cli_output_of_an_up(reference):
    info = json.loads((reference.state_dir / "sandbox.json").read_text())
    assert stat.S_IMODE((reference.state_dir / "sandbox.json").stat().st_mode) == 0o600
    secrets = [info["kubernetes_access_key_id"].encode()]
    secrets += [os.environ[k].encode() for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if os.environ.get(k)]

    texts: dict[str, bytes] = {"up stdout": reference.up.stdout.encode(), "up stderr": reference.up.stderr.encode()}
    for args in (("status", "--json"), ("status", "--refresh", "--json"), ("sandbox", "status", "--json"),
                 ("phase", "list", "--json"), ("plan", "--json"), ("up", "--yes", "--json", "-vv")):
        result = run(reference.project, *args)
        texts[" ".join(args)] = (result.stdout + result.stderr).encode()
    # The state (and its backup) and every log the sandbox and its Lambdas wrote. sandbox.json is
    # where the token lives (0600, checked above); caches hold third-party code, not our output.
    files = [reference.state_dir / "state.json", reference.state_dir / "state.json.bak",
             *(p for p in (reference.state_dir / "logs").rglob("*") if p.is_file())]
    for path in files:
        texts[str(path.relative_to(reference.project))] = path.read_bytes()
    assert any("logs" in name for name in texts) and any(name.endswith("state.json") for name in texts)

    def found(text: bytes) -> list[str]:
        hits = [s.decode()[:6] + "…" for s in secrets if s in text]
        return hits + [m.group(0)[:24].decode(errors="replace") + "…" for p in SECRET_PATTERNS for m in p.finditer(text)]

    assert found((reference.state_dir / "sandbox.json").read_bytes()), "the scan must see the token where it lives"
    leaks = {name: hits for name, text in texts.items() if (hits := found(text))}
    print(f"\nsecret scan: {len(texts)} outputs and files, {sum(map(len, texts.values())) // 1024} KiB, "
          f"{len(leaks)} with a secret")
    assert leaks == {}


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _listening_sockets() -> dict[int, str]:
    """inode -> "address:port" of every listening TCP socket (from /proc/net/tcp and tcp6)."""
    found = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[int(fields[9])] = fields[1]
    return found


LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.mark.slow
def test_sandbox_servers_listen_on_loopback_only(reference):
    daemon_pid = json.loads((reference.state_dir / "sandbox.json").read_text())["pid"]
    listening = _listening_sockets()
    bound = {}
    for pid in _process_tree(daemon_pid):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            match = re.fullmatch(r"socket:\[(\d+)\]", link)
            if match and int(match.group(1)) in listening:
                bound[listening[int(match.group(1))]] = pid
    print(f"\nsandbox: {len(bound)} listening sockets in {len(_process_tree(daemon_pid))} processes")
    assert len(bound) >= 5  # moto, the Kubernetes API, the registry, Triton HTTP and gRPC at least
    assert [a for a in bound if a.split(":")[0] not in LOOPBACK_HEX] == []
