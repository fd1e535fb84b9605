"""Least privilege and leak checks over what `radstream render` writes for a test deployment (the
documents the phases apply, built by the same functions): IAM policies (no wildcard action, every
resource this deployment's, clean under parliament), Kubernetes manifests (valid under
kubernetes-validate, clean under checkov), the ASL (valid under statelint), nothing left unrendered;
then no secret in the state, logs or CLI output of an `up`, and the sandbox's servers on loopback only.
Teardown leaving other resources alone is proved in test_crash_resume.py; TLS-only buckets and their
public access block in tests/integration/test_phase0_sandbox.py."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.prove.support import run

DEPLOYMENT = "rs-lp-q7"  # distinctive, so "the ARN names this deployment" cannot hold by accident
ACCOUNT, REGION = "123456789012", "us-east-1"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{DEPLOYMENT}-triton:model-0123456789ab@sha256:{'0' * 64}"
LAYER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{DEPLOYMENT}-pipeline-deps:3"
GPU_INSTANCE = "g4dn.xlarge"


def render_into(out: Path, **settings) -> Path:
    """What `radstream render` writes for the test deployment: its pure half, with fixed facts, so no
    sandbox is needed."""
    from radstream import documents
    from radstream.config import validate
    from radstream.names import Names

    config = validate({"target": "aws", "deployment": DEPLOYMENT, **settings}, "test")
    facts = documents.Facts(IMAGE, LAYER, REPO / "model_repo")
    documents.write(out, documents.render(Names(DEPLOYMENT, ACCOUNT, REGION), config, REPO, facts))
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """With the public door open: its web ACL and security group are in the render too."""
    return render_into(tmp_path_factory.mktemp("render"), expose={"public": True})


@pytest.fixture(scope="module")
def rendered_gpu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPU profile adds the NVIDIA device plugin DaemonSet, GPU requests and the GPU toleration."""
    return render_into(tmp_path_factory.mktemp("render-gpu"), nodegroup={"instance_type": GPU_INSTANCE})


def documents_in(folder: Path, pattern: str) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob(pattern))}


def identity_policies(rendered: Path) -> dict[str, dict]:
    # The operator's own policies (operator*.policy.json) grant what creating these roles takes (IAM
    # writes, iam:PassRole, reads on "*"): tests/unit/test_operator_policy.py holds them to their rules.
    return {name: doc for name, doc in documents_in(rendered / "iam", "*.policy.json").items()
            if not name.startswith("operator")}


def resource_policies(rendered: Path) -> dict[str, dict]:
    return {**documents_in(rendered / "iam", "*.resource-policy.json"),
            **documents_in(rendered / "s3", "*.bucket-policy.json")}


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_render_fills_every_folder_and_leaves_no_placeholder(rendered: Path, rendered_gpu: Path):
    from radstream.documents import FOLDERS

    for out, folders in ((rendered, set(FOLDERS)), (rendered_gpu, set(FOLDERS) - {"waf"})):
        files = [p for p in out.rglob("*") if p.is_file()]
        assert {p.relative_to(out).parts[0] for p in files} == folders
        assert [str(p.relative_to(out)) for p in files if "${" in p.read_text()] == []
    assert len(list((rendered / "lambda").glob("*.json"))) == 6 and len(identity_policies(rendered)) == 6
    # The facts reach the documents: the layer version into every function, the digest into the pods.
    assert {json.loads(p.read_text())["Layers"][0] for p in (rendered / "lambda").glob("*.json")} == {LAYER}
    assert IMAGE in (rendered / "k8s" / "01-deployment-triton.yaml").read_text()
    assert "KIND_CPU" in (rendered / "triton" / "radstream_cxr" / "config.pbtxt").read_text()


def test_render_opens_nothing_to_the_internet_but_the_doors_443(rendered: Path, rendered_gpu: Path):
    import yaml

    for out in (rendered, rendered_gpu):
        groups = documents_in(out / "ec2", "*.security-group.json")
        open_rules = {(name, rule.get("FromPort")) for name, group in groups.items()
                      for key in ("IpPermissions", "IpPermissionsEgress") for rule in group[key]
                      if "0.0.0.0/0" in str(rule.get("IpRanges"))}
        assert open_rules == ({("door.security-group.json", 443)} if out == rendered else set())
        # Everything else stays inside the VPC: functions in it, Triton's load balancer internal, over TLS.
        assert all(doc["VpcConfig"]["SubnetIds"] for doc in documents_in(out / "lambda", "*.json").values())
        service = yaml.safe_load(next((out / "k8s").glob("*-service-*.yaml")).read_text())
        annotations = service["metadata"]["annotations"]
        assert annotations["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
        assert [p["port"] for p in service["spec"]["ports"]] == [443]
        assert all(ipaddress.ip_network(cidr).is_private for cidr in service["spec"]["loadBalancerSourceRanges"])


def test_the_doors_web_acl_runs_awss_rule_groups_a_size_cap_and_a_rate_limit(rendered: Path):
    acl = json.loads((rendered / "waf" / "door.web-acl.json").read_text())
    statements = {rule["Name"]: rule["Statement"] for rule in acl["Rules"]}
    managed = {s["ManagedRuleGroupStatement"]["Name"]: s["ManagedRuleGroupStatement"] for s in statements.values()
               if "ManagedRuleGroupStatement" in s}
    assert set(managed) == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesSQLiRuleSet",
                            "AWSManagedRulesKnownBadInputsRuleSet"}
    # The common set's 8 KB body limit would refuse every inference request: it only counts.
    assert managed["AWSManagedRulesCommonRuleSet"]["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert statements["rate-limit"]["RateBasedStatement"]["Limit"] >= 10
    assert acl["DefaultAction"] == {"Allow": {}} and len({r["Priority"] for r in acl["Rules"]}) == len(acl["Rules"])
    assert not acl["VisibilityConfig"]["SampledRequestsEnabled"]


# Resources that cannot carry a deployment's name, each required by AWS as it is:
SCOPE_EXCEPTIONS = {
    # Glue authorises every table call against the account's one Data Catalog as well as the table.
    f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog",
    # Every Glue crawler logs to this AWS-named group; the stream inside it is scoped to ours.
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/crawlers",
}
# ecr:GetAuthorizationToken has no resource type: IAM only accepts "*" for it (documented in the
# EKS node role). It yields a registry login; what can be pulled is scoped by the repository ARN.
# ec2:DescribeNetworkInterfaces, like every EC2 Describe call, has no resource type either; Lambda
# needs it to find the interfaces of a function in a VPC (it reads, it changes nothing).
STAR_RESOURCE_ACTIONS = {"ecr:GetAuthorizationToken", "ec2:DescribeNetworkInterfaces"}


def tagged_as_ours(statement: dict) -> bool:
    """A statement whose resources must carry this deployment's tag when they carry one at all: the
    ENIs Lambda makes in our subnets get no tag, so "IfExists" is as tight as IAM allows for them
    (EC2 authorises CreateNetworkInterface on the new interface, the subnet and the group at once)."""
    condition = statement.get("Condition", {})
    pinned = {**condition.get("StringEquals", {}), **condition.get("StringEqualsIfExists", {})}
    return pinned.get("aws:ResourceTag/radstream:deployment") == DEPLOYMENT


def test_iam_grants_no_wildcard_action_and_only_this_deployments_resources(rendered: Path):
    from radstream.names import BUCKET_KINDS, Names

    buckets = Names(DEPLOYMENT, ACCOUNT, REGION).buckets()
    own_names = [DEPLOYMENT, DEPLOYMENT.replace("-", "_"), *(buckets[kind] for kind in BUCKET_KINDS)]
    checked = 0
    for name, document in {**identity_policies(rendered), **resource_policies(rendered)}.items():
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
                assert resource in SCOPE_EXCEPTIONS or any(own in resource for own in own_names) \
                    or tagged_as_ours(statement), f"{name}: {resource} is not scoped to deployment {DEPLOYMENT}"
    assert checked >= 40


def test_trust_policies_admit_one_aws_service_to_assume_the_role(rendered: Path):
    trusts = documents_in(rendered / "iam", "*.trust.json")
    assert len(trusts) == 7
    for name, trust in trusts.items():
        for statement in statements(trust):
            assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole", name
            services = as_list(statement["Principal"]["Service"])
            assert list(statement["Principal"]) == ["Service"] and len(services) == 1, name
            assert services[0].endswith(".amazonaws.com"), name


def parliament_findings(document: dict) -> list[tuple[str, str]]:
    from parliament import analyze_policy_string

    policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
    return [(finding.issue, str(finding.detail)) for finding in policy.findings]


def test_parliament_finds_nothing_in_the_policies(rendered: Path):
    # parliament audits identity policies and resource policies with a Resource; trust policies have
    # none by design (see the test above for them).
    policies = {**identity_policies(rendered), **resource_policies(rendered)}
    found = {}
    for name, document in policies.items():
        findings = parliament_findings(document)
        if name == "eks-nodes.policy.json":
            # The community auditor flags ecr:GetAuthorizationToken as exposing credentials: it is
            # the registry login nodes need to pull the serving image (the STAR_RESOURCE_ACTIONS case).
            findings = [f for f in findings if f[0] != "CREDENTIALS_EXPOSURE"]
        if findings:
            found[name] = findings
    print(f"\nparliament: {sum(map(len, found.values()))} findings in {len(policies)} policies")
    assert len(policies) == 6 + 2 + 4 and found == {}  # identity, resource (logs, queue), bucket


def test_parliament_does_find_a_wildcard_policy():
    """The checker is alive: the same call flags what this project must never write."""
    issues = {issue for issue, _ in parliament_findings(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})}
    assert issues


# -- Kubernetes -------------------------------------------------------------------------------------
def kube_objects(rendered: Path) -> dict[Path, dict]:
    import yaml

    return {path: yaml.safe_load(path.read_text()) for path in sorted((rendered / "k8s").glob("*.yaml"))}


def test_kubernetes_manifests_are_valid_for_the_cluster_version(rendered: Path, rendered_gpu: Path):
    import kubernetes_validate

    cpu, gpu = kube_objects(rendered), kube_objects(rendered_gpu)
    kinds = ["Namespace", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Service"]
    assert [o["kind"] for o in cpu.values()] == kinds and [o["kind"] for o in gpu.values()] == ["DaemonSet", *kinds]
    for obj in [*cpu.values(), *gpu.values()]:
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


def test_kubernetes_manifests_are_clean_under_checkov(rendered: Path, rendered_gpu: Path):
    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (it needs its own venv: its pins clash with boto3's)")
    # Both profiles: the GPU one's Deployment asks for a GPU and tolerates the GPU taint.
    scanned = [str(path) for out in (rendered, rendered_gpu) for path, obj in kube_objects(out).items()
               if obj["kind"] not in CHECKOV_SKIPPED_OBJECTS]
    proc = subprocess.run([checkov, "--framework", "kubernetes", "--output", "json", "--compact",
                           "--skip-check", ",".join(sorted(CHECKOV_SKIPS)), "-f", *scanned],
                          capture_output=True, text=True, timeout=300, check=False)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [(c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    print(f"\ncheckov: {len(scanned)} files, {len(failed)} failed, {passed} passed, "
          f"{len(CHECKOV_SKIPS)} checks skipped")
    assert len(scanned) == 10 and passed > 40 and failed == []


def test_pipeline_asl_is_valid_under_statelint(rendered: Path):
    from statelint.linter import Linter

    definition = json.loads((rendered / "stepfunctions" / "pipeline.asl.json").read_text())
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
    # The deployment's TLS keys (Triton's and its CA's), whose PEM body could be printed without its header.
    tls_keys = [reference.state_dir / "tls" / name for name in ("server.key", "ca.key")]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in tls_keys)
    assert stat.S_IMODE((reference.state_dir / "tls").stat().st_mode) == 0o700
    secrets += [b"".join(k.read_bytes().splitlines()[1:-1]) for k in tls_keys]
    # Line by line too, but only the two body lines that hold the private scalar: a P-256 PKCS#8 key's
    # last line is its public point, which the (public) certificates contain as well.
    secrets += [line for k in tls_keys for line in k.read_bytes().splitlines()[1:3]]

    texts: dict[str, bytes] = {"up stdout": reference.up.stdout.encode(), "up stderr": reference.up.stderr.encode()}
    for args in (("status", "--json"), ("status", "--refresh", "--json"), ("sandbox", "status", "--json"),
                 ("phase", "list", "--json"), ("plan", "--json"), ("up", "--yes", "--json", "-vv")):
        result = run(reference.project, *args)
        texts[" ".join(args)] = (result.stdout + result.stderr).encode()
    rendered = reference.project / "rendered"
    result = run(reference.project, "render", "--out", str(rendered))
    assert result.code == 0, result.stderr[-2000:]
    texts.update({f"render {p.relative_to(rendered)}": p.read_bytes() for p in rendered.rglob("*") if p.is_file()})
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
    assert found(tls_keys[0].read_bytes()[40:]), "the scan must see Triton's key where it lives, even headless"
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
    assert len(bound) >= 6  # moto, the Kubernetes API, the registry, Triton HTTP and gRPC, nginx at least
    assert any(Path(f"/proc/{pid}/comm").read_text().strip() == "nginx" for pid in bound.values())
    assert [a for a in bound if a.split(":")[0] not in LOOPBACK_HEX] == []
