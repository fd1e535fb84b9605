"""The whole lifecycle through the real CLI against a real sandbox daemon: `up` from nothing, a
converged second `up` with zero mutations, phase 7 parking the nodegroup and pricing what still
costs, `teardown` proving nothing tagged is left, a second teardown with nothing to do; and a dry
run on a fresh project that lists changes and changes nothing. Timings are printed, not asserted."""

from __future__ import annotations

import base64
import http.client
import json
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-uptd"


def radstream(project: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """(exit code, the one JSON object, stderr) of one CLI run, timed on stderr of the test."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args, "--json"], cwd=project, env=cli_env(), check=False,
                          capture_output=True, text=True, timeout=900)
    print(f"\nradstream {' '.join(args)}: exit {proc.returncode} in {time.monotonic() - started:.1f}s")
    assert proc.stdout.count("\n") == 1, f"--json must print exactly one line:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def aws(project: Path, service: str) -> Any:
    import boto3

    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def nodegroup_scaling(project: Path) -> dict[str, int]:
    return aws(project, "eks").describe_nodegroup(clusterName=f"{DEPLOYMENT}-cluster",
                                                  nodegroupName="cpu-ng")["nodegroup"]["scalingConfig"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from radstream.sandbox import daemon

    path = tmp_path_factory.mktemp("up-teardown")
    # The public door open, with a rate limit a flood reaches in a second.
    (path / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {DEPLOYMENT}\n"
                                         "expose:\n  public: true\n  rate_limit: 100\n  rate_window_seconds: 60\n")
    try:
        yield path
    finally:
        daemon.stop(path / ".radstream")


@pytest.fixture(scope="module")
def first_up(project: Path) -> dict[str, Any]:
    code, result, _ = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    return result


@pytest.fixture(scope="module")
def second_up(first_up: dict[str, Any], project: Path) -> dict[str, Any]:
    code, result, _ = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    return result


@pytest.fixture(scope="module")
def parked(second_up: dict[str, Any], security_test: dict[str, Any], new_model: dict[str, Any],
           project: Path) -> dict[str, Any]:
    code, first, stderr = radstream(project, "phase", "run", "7", "--yes")
    assert code == 0, first["error"]
    scaling = nodegroup_scaling(project)
    code, again, _ = radstream(project, "phase", "run", "7", "--yes")
    assert code == 0, again["error"]
    code, status, _ = radstream(project, "status")
    assert code == 0
    return {"first": first, "stderr": stderr, "scaling": scaling, "again": again, "outputs": status["outputs"]}


TAGGED = [{"Name": "tag:radstream:deployment", "Values": [DEPLOYMENT]}]


def route_table_of(tables: list[dict[str, Any]], subnet: str) -> dict[str, Any]:
    """The subnet's own route table, else the VPC's main one (as EC2 routes it)."""
    own = [t for t in tables if any(a.get("SubnetId") == subnet for a in t["Associations"])]
    return (own or [t for t in tables if any(a.get("Main") for a in t["Associations"])])[0]


@pytest.fixture(scope="module")
def network(first_up: dict[str, Any], project: Path) -> dict[str, Any]:
    """The deployment's VPC and private subnets as `up` left them (the teardown test needs the IDs)."""
    ec2 = aws(project, "ec2")
    (vpc,) = ec2.describe_vpcs(Filters=TAGGED)["Vpcs"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    private = {s["SubnetId"] for s in subnets if f"{DEPLOYMENT}-private-" in str(s.get("Tags"))}
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                                  {"Name": "group-name", "Values": [f"{DEPLOYMENT}-lambda"]}])
    return {"vpc": vpc["VpcId"], "private": private, "lambda_group": group["SecurityGroups"][0]["GroupId"]}


@pytest.fixture(scope="module")
def torn_down(parked: dict[str, Any], network: dict[str, Any], project: Path) -> dict[str, Any]:
    code, result, _ = radstream(project, "teardown", "--yes")
    return {"code": code, "result": result}


def test_up_from_nothing_brings_phases_0_to_5_up_with_their_outputs(project: Path, first_up: dict[str, Any]):
    assert first_up["ok"] and first_up["mutations"] > 0
    assert [(p["number"], p["status"]) for p in first_up["phases"]] == [(n, "done") for n in range(6)]
    code, status, _ = radstream(project, "status")
    assert code == 0
    outputs = status["outputs"]
    assert outputs["endpoint"].startswith("https://127.0.0.1:")
    assert outputs["state_machine_arn"].endswith(f":stateMachine:{DEPLOYMENT}-pipeline")
    assert set(outputs["buckets"]) == {"images", "results", "telemetry", "artifacts"}


def test_triton_is_behind_an_internal_load_balancer_whose_tls_a_plain_tritonclient_verifies(
        project: Path, first_up: dict[str, Any], tmp_path: Path):
    import numpy as np
    import onnxruntime as ort
    import tritonclient.http as httpclient
    from gevent.ssl import create_default_context

    from radstream.certificates import ensure
    from radstream.resources import model_repository

    _, status, _ = radstream(project, "status")
    address = status["outputs"]["endpoint"].removeprefix("https://")
    (balancer,) = aws(project, "elb").describe_load_balancers()["LoadBalancerDescriptions"]
    assert balancer["Scheme"] == "internal"
    (listener,) = [d["Listener"] for d in balancer["ListenerDescriptions"]]
    assert (listener["Protocol"], listener["LoadBalancerPort"]) == ("HTTPS", 443)  # moto echoes no InstanceProtocol
    assert listener["SSLCertificateId"] == status["outputs"]["certificate_arn"]

    images = np.random.default_rng(3).integers(0, 256, (2, 1, 224, 224), dtype=np.uint8)
    session = ort.InferenceSession(str(model_repository(project / ".radstream") / "radstream_cxr" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": images})[0]

    def infer(ca: Path) -> Any:
        client = httpclient.InferenceServerClient(address, ssl=True, ssl_options={"ca_certs": str(ca)},
                                                  ssl_context_factory=create_default_context)
        try:
            tensor = httpclient.InferInput("image", list(images.shape), "UINT8")
            tensor.set_data_from_numpy(images, binary_data=True)
            return client.infer("radstream_cxr", [tensor],
                                outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=True)])
        finally:
            client.close()

    probabilities = infer(project / ".radstream" / "tls" / "ca.crt").as_numpy("probabilities")
    np.testing.assert_allclose(probabilities, expected, atol=1e-5, rtol=0)
    print(f"\nover TLS through the load balancer: {probabilities.shape} probabilities, max |diff| "
          f"{np.abs(probabilities - expected).max():.2e} from onnxruntime")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        infer(ensure(tmp_path / "other", "other-ca", "other", ips=("127.0.0.1",)).ca_cert)


def test_the_cluster_nodes_and_functions_are_in_the_private_subnets(project: Path, network: dict[str, Any]):
    ec2, private = aws(project, "ec2"), network["private"]
    assert len(private) >= 2
    # Private: no subnet's route table (its own, else the VPC's main one) routes to an internet gateway.
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [network["vpc"]]}])["RouteTables"]
    for subnet in private:
        table = route_table_of(tables, subnet)
        assert not any(str(r.get("GatewayId", "")).startswith("igw-") for r in table["Routes"]), (subnet, table)
    eks = aws(project, "eks")
    cluster = eks.describe_cluster(name=f"{DEPLOYMENT}-cluster")["cluster"]
    assert set(cluster["resourcesVpcConfig"]["subnetIds"]) == private
    nodegroup = eks.describe_nodegroup(clusterName=f"{DEPLOYMENT}-cluster", nodegroupName="cpu-ng")["nodegroup"]
    assert set(nodegroup["subnets"]) == private
    functions = [f for f in aws(project, "lambda").list_functions()["Functions"]
                 if f["FunctionName"].startswith(f"{DEPLOYMENT}-")]
    assert functions
    for function in functions:
        config = function["VpcConfig"]
        assert (set(config["SubnetIds"]), config["SecurityGroupIds"]) == (private, [network["lambda_group"]]), \
            function["FunctionName"]
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [network["vpc"]]}])["NetworkInterfaces"]
    lambda_enis = [e for e in enis if e.get("InterfaceType") == "lambda"]
    assert {e["SubnetId"] for e in lambda_enis} == private
    assert {g["GroupId"] for e in lambda_enis for g in e["Groups"]} == {network["lambda_group"]}
    assert all(any(f["FunctionName"] in e["Description"] for e in lambda_enis) for f in functions)


def test_nodes_launch_from_a_template_that_tags_their_instances_and_volumes(project: Path, first_up: dict[str, Any]):
    # Cost Explorer by tag sees the nodes only if what they launch carries the deployment's tag.
    nodegroup = aws(project, "eks").describe_nodegroup(clusterName=f"{DEPLOYMENT}-cluster",
                                                       nodegroupName="cpu-ng")["nodegroup"]
    template = nodegroup["launchTemplate"]
    (version,) = aws(project, "ec2").describe_launch_template_versions(
        LaunchTemplateId=template["id"], Versions=[template["version"]])["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 100  # nodegroup.disk_gib, not EKS's 20
    tagged = {spec["ResourceType"]: {t["Key"]: t["Value"] for t in spec["Tags"]} for spec in data["TagSpecifications"]}
    assert (tagged["instance"].get("radstream:deployment"), tagged["volume"].get("radstream:deployment")) == \
        (DEPLOYMENT, DEPLOYMENT)


def test_a_second_up_changes_nothing(second_up: dict[str, Any]):
    assert second_up["ok"] and second_up["mutations"] == 0
    assert {p["status"] for p in second_up["phases"]} == {"skipped"}


def test_plan_detailed_exitcode_is_0_once_converged(project: Path, second_up: dict[str, Any]):
    code, plan, _ = radstream(project, "plan", "--detailed-exitcode")
    assert code == 0 and plan["ok"] and not any(p.get("changes") for p in plan["phases"])


def test_render_writes_what_up_applied_with_the_targets_own_values(project: Path, second_up: dict[str, Any],
                                                                   tmp_path: Path):
    import yaml

    code, rendered, _ = radstream(project, "render", "--out", str(tmp_path))
    assert code == 0 and rendered["ok"] and rendered["target"] == "sandbox" and rendered["out"] == str(tmp_path)
    assert {f.split("/")[0] for f in rendered["files"]} == {"iam", "s3", "events", "stepfunctions", "lambda", "k8s",
                                                           "triton", "ec2", "waf", "sqs"}
    # The values only the target knows are its own: the pushed image's digest, the layer's version.
    code, status, _ = radstream(project, "status")
    deployment = yaml.safe_load((tmp_path / "k8s" / "01-deployment-triton.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == status["outputs"]["image"]
    live = aws(project, "lambda").get_function(FunctionName=f"{DEPLOYMENT}-invoke-inference")["Configuration"]
    function = json.loads((tmp_path / "lambda" / "invoke_inference.json").read_text())
    assert function["Layers"] == [layer["Arn"] for layer in live["Layers"]] and function["Role"] == live["Role"]
    assert {k: sorted(v) for k, v in function["VpcConfig"].items()} == {
        k: sorted(live["VpcConfig"][k]) for k in ("SubnetIds", "SecurityGroupIds")}
    machine = aws(project, "stepfunctions").describe_state_machine(
        stateMachineArn=status["outputs"]["state_machine_arn"])
    asl = json.loads((tmp_path / "stepfunctions" / "pipeline.asl.json").read_text())
    assert json.loads(machine["definition"]) == asl


# --- kubectl on the sandbox, as a user would read it (after `up`, before phase 7 parks the nodes) ---
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None,
                                   reason="no kubectl on PATH: apt-get install kubernetes-client (./dev test does)")


@pytest.fixture(scope="module")
def kube_env(second_up: dict[str, Any], project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment `eval "$(radstream kubeconfig)"` leaves: KUBECONFIG set, nothing else printed.
    kubectl's discovery cache goes to a temporary directory, not the user's."""
    cache = tmp_path_factory.mktemp("kube-cache")
    env = cli_env({"KUBECACHEDIR": str(cache)})
    env.pop("KUBECONFIG", None)
    script = f'eval "$({shlex.quote(sys.executable)} -m radstream.cli kubeconfig)" && printf %s "$KUBECONFIG"'
    proc = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == str(project / ".radstream" / "kubeconfig")
    return env | {"KUBECONFIG": proc.stdout}


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=120)
    print(f"\n$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return proc


def rows(output: str) -> list[list[str]]:
    """kubectl's table, split on runs of 2+ spaces (cells like `10.0.0.1` have none)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]


@needs_kubectl
def test_the_kubeconfig_is_private_verifies_the_sandbox_ca_and_holds_no_token(project: Path, kube_env: dict[str, str]):
    import yaml

    path = Path(kube_env["KUBECONFIG"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    (cluster,) = config["clusters"]
    ca_dir = project / ".radstream" / "sandbox-ca"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == (ca_dir / "ca.crt").read_bytes()
    assert cluster["cluster"]["server"].startswith("https://127.0.0.1:")
    assert {stat.S_IMODE(p.stat().st_mode) for p in ca_dir.glob("*.key")} == {0o600}
    ((user,),) = [config["users"]]
    assert Path(user["user"]["exec"]["command"]).is_absolute() and "token" not in user["user"]
    code, result, _ = radstream(project, "kubeconfig")
    assert (code, result["path"], result["context"]) == (0, str(path), f"radstream-sandbox-{DEPLOYMENT}")


@needs_kubectl
def test_kubectl_gets_the_pods_nodes_services_autoscaler_and_budget(kube_env: dict[str, str]):
    pods = kubectl(kube_env, "get", "pods", "-A")
    assert pods.returncode == 0, pods.stderr
    triton = [r for r in rows(pods.stdout) if r[0] == "radstream" and r[1].startswith("triton-")]
    assert triton and all(r[2:4] == ["1/1", "Running"] for r in triton)
    assert any(r[0] == "kube-system" and r[1].startswith("coredns-") for r in rows(pods.stdout))

    rest = kubectl(kube_env, "get", "nodes,svc,hpa,pdb", "-A")
    assert rest.returncode == 0, rest.stderr
    table = rows(rest.stdout)
    assert any(r[0].startswith("node/") and r[1] == "Ready" for r in table)
    (service,) = [r for r in table if r[1:2] == ["service/triton-svc"]]
    assert service[2] == "LoadBalancer" and service[4] not in ("<pending>", "<none>")
    assert any(r[1] == "horizontalpodautoscaler.autoscaling/triton" and r[2] == "Deployment/triton" for r in table)
    assert any(r[0] == "radstream" and r[1] == "poddisruptionbudget.policy/triton" for r in table)


@needs_kubectl
def test_kubectl_describes_the_triton_deployment_and_shows_the_local_tritons_log(project: Path, kube_env: dict[str, str]):
    described = kubectl(kube_env, "describe", "deployment", "-n", "radstream")
    assert described.returncode == 0, described.stderr
    assert re.search(r"^Name:\s+triton$", described.stdout, re.M)
    assert re.search(r"^Replicas:\s+\d+ desired \| \d+ updated \| \d+ total \| [1-9]\d* available", described.stdout, re.M)
    assert re.search(r"^Events:", described.stdout, re.M)

    names = kubectl(kube_env, "get", "pods", "-n", "radstream", "-l", "app.kubernetes.io/name=triton", "-o", "name")
    pod = names.stdout.split()[0]
    logs = kubectl(kube_env, "logs", pod, "-n", "radstream")
    assert logs.returncode == 0, logs.stderr
    triton_log = (project / ".radstream" / "logs" / "triton.log").read_text()
    assert logs.stdout and triton_log.startswith(logs.stdout.splitlines()[0])
    assert "Started HTTPService" in logs.stdout
    tail = kubectl(kube_env, "logs", pod, "-n", "radstream", "--tail=1")
    assert len(tail.stdout.splitlines()) == 1


@needs_kubectl
def test_the_sandbox_cluster_refuses_plain_http_and_tokens_it_does_not_admit(project: Path, kube_env: dict[str, str]):
    import urllib.request
    from urllib.parse import urlsplit

    from tests.support.kube import sandbox_token

    info = json.loads((project / ".radstream" / "sandbox.json").read_text())
    port = urlsplit(info["kubernetes_endpoint"]).port
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=10)
    # Well formed and signed, but by a principal the cluster has no access entry for.
    foreign = sandbox_token({"kubernetes_access_key_id": "AKIDNOTADMITTED0000"})
    refused = kubectl(kube_env, "--kubeconfig=/dev/null", f"--server={info['kubernetes_endpoint']}",
                      f"--certificate-authority={info['kubernetes_ca']}", f"--token={foreign}", "get", "pods")
    # kubectl's words for a 401: "(Unauthorized)" up to 1.2x, "(the server has asked for the client to provide credentials)" since.
    assert refused.returncode == 1 and "You must be logged in to the server" in refused.stderr


@needs_kubectl
def test_kubeconfig_merge_keeps_the_users_other_entries(project: Path, kube_env: dict[str, str], tmp_path: Path):
    import yaml

    mine, second = tmp_path / "config", tmp_path / "second"
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "other",
             "clusters": [{"name": "other", "cluster": {"server": "https://other.example:443"}}],
             "users": [{"name": "other", "user": {"token": "x"}}],
             "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}
    mine.write_text(yaml.safe_dump(other))
    env = kube_env | {"KUBECONFIG": f"{mine}:{second}"}
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", "kubeconfig", "--merge", "--json"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(mine) and not second.exists()  # $KUBECONFIG's first file
    merged = yaml.safe_load(mine.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["other", f"radstream-sandbox-{DEPLOYMENT}"]
    assert merged["current-context"] == f"radstream-sandbox-{DEPLOYMENT}"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600
    nodes = kubectl(env, "get", "nodes")
    assert nodes.returncode == 0 and "Ready" in nodes.stdout


def test_on_the_aws_target_the_kubeconfig_is_the_eks_entry_with_radstreams_token_plugin(
        project: Path, second_up: dict[str, Any], tmp_path: Path):
    # The sandbox's emulated EKS stands in for AWS: same calls, same cluster description.
    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    (tmp_path / "radstream.yaml").write_text(f"target: aws\ndeployment: {DEPLOYMENT}\naws:\n  endpoint_url: {endpoint}\n")
    env = cli_env({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLEOPERATOR1", "AWS_SECRET_ACCESS_KEY": "testing"})
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", "kubeconfig", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    cluster = aws(project, "eks").describe_cluster(name=f"{DEPLOYMENT}-cluster")["cluster"]
    assert (result["context"], result["cluster"], result["server"]) == (cluster["arn"], cluster["arn"], cluster["endpoint"])
    import yaml

    config = yaml.safe_load(Path(result["path"]).read_text())
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == cluster["certificateAuthority"]["data"]
    plugin = config["users"][0]["user"]["exec"]
    credential = subprocess.run([plugin["command"], *plugin["args"]], cwd="/", env=env, capture_output=True, text=True,
                                timeout=60)
    assert credential.returncode == 0, credential.stderr
    printed = json.loads(credential.stdout)
    assert (printed["kind"], printed["apiVersion"]) == ("ExecCredential", plugin["apiVersion"])
    url = base64.urlsafe_b64decode(printed["status"]["token"].removeprefix("k8s-aws-v1.") + "==").decode()
    assert "Action=GetCallerIdentity" in url and "X-Amz-Credential=AKIDEXAMPLEOPERATOR1%2F" in url
    assert "x-k8s-aws-id" in url and printed["status"]["expirationTimestamp"].endswith("Z")


@pytest.fixture(scope="module")
def security_test(second_up: dict[str, Any], project: Path) -> dict[str, Any]:
    """After the converged second `up` (the flood leaves this address rate-limited for a minute)."""
    code, result, _ = radstream(project, "security", "test")
    return {"code": code, "result": result}


def test_the_public_door_is_an_alb_with_its_web_acl_in_the_public_subnets(project: Path, first_up: dict[str, Any]):
    elbv2, wafv2 = aws(project, "elbv2"), aws(project, "wafv2")
    (lb,) = elbv2.describe_load_balancers(Names=[f"{DEPLOYMENT}-door"])["LoadBalancers"]
    assert (lb["Scheme"], lb["Type"]) == ("internet-facing", "application")
    acl = wafv2.get_web_acl_for_resource(ResourceArn=lb["LoadBalancerArn"])["WebACL"]
    assert {r["Statement"]["ManagedRuleGroupStatement"]["Name"] for r in acl["Rules"]
            if "ManagedRuleGroupStatement" in r["Statement"]} == {
        "AWSManagedRulesCommonRuleSet", "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"}
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    outputs = first_up["phases"][3]["outputs"]
    assert outputs["public_endpoint"].startswith("https://127.0.0.1:") and outputs["web_acl_arn"] == acl["ARN"]


def test_security_test_finds_every_attack_blocked_and_every_legitimate_request_answered(security_test: dict[str, Any]):
    result = security_test["result"]
    assert security_test["code"] == 0, [p for p in result["probes"] if not p["passed"]]
    assert result["ok"] and result["attacks_blocked"] == result["attacks_total"] >= 10
    assert result["legitimate_answered"] == result["legitimate_total"] >= 3
    kinds = {p["name"]: p["status"] for p in result["probes"]}
    assert any(status == 429 for name, status in kinds.items() if "flood" in name)


NEW_LABELS = ["Atelectasis", "Consolidation", "Pleural Thickening"]


@pytest.fixture(scope="module")
def new_model(security_test: dict[str, Any], project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A user's own model imported after `up`, `up` again, then one study through the pipeline."""
    from radstream.studies import chest_pixels, encode, sidecar
    from tests.unit.test_model_repository import labels_file, tiny_model

    work = tmp_path_factory.mktemp("new-model")
    code, imported, _ = radstream(project, "model", "import", str(tiny_model(work / "mine.onnx")), "--labels",
                                  str(labels_file(work / "labels.txt", NEW_LABELS)), "--untrained")
    assert code == 0, imported
    code, plan, _ = radstream(project, "plan")
    assert code == 0, plan
    code, upped, _ = radstream(project, "up", "--yes")
    assert code == 0, upped["error"]
    (work / "after-import.png").write_bytes(encode(chest_pixels(256, 256, seed=7), "png"))
    (work / "after-import.json").write_bytes(sidecar("after-import"))
    code, ingested, _ = radstream(project, "ingest", str(work / "after-import.png"))
    assert code == 0, ingested
    s3 = aws(project, "s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"{DEPLOYMENT}-results-"))
    deadline = time.monotonic() + 120
    while not (listed := s3.list_objects_v2(Bucket=bucket, Prefix="results/after-import/").get("Contents")):
        assert time.monotonic() < deadline, "no result for the study uploaded after the new model's rollout"
        time.sleep(1)
    result = json.loads(s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read())
    code, status, _ = radstream(project, "status")
    assert code == 0
    return {"imported": imported, "plan": plan, "up": upped, "result": result, "status": status}


def test_after_a_model_import_up_says_what_changes_and_the_next_study_is_scored_by_the_new_model(new_model: dict[str, Any]):
    imported, result = new_model["imported"], new_model["result"]
    assert imported["version"] == 2 and imported["labels"] == NEW_LABELS
    [image] = [c for p in new_model["plan"]["phases"] for c in p.get("changes") or [] if c["resource"] == "container image"]
    assert f"radstream_cxr version 2 (sha256 {imported['sha256'][:12]}, 3 labels, untrained)" in image["detail"]
    assert "replacing radstream_cxr version 1" in image["detail"]
    phase2 = next(p for p in new_model["up"]["phases"] if p["number"] == 2)
    assert phase2["status"] == "done" and phase2["mutations"] > 0
    assert (result["model_version"], result["model_sha256"]) == ("2", imported["sha256"])
    assert sorted(f["label"] for f in result["findings"]) == sorted(NEW_LABELS)
    served = new_model["status"]["outputs"]["served_model"]
    assert (served["version"], served["sha256"], served["labels"]) == (2, imported["sha256"], NEW_LABELS)


def test_phase7_scales_the_nodegroup_to_zero_and_reports_what_still_costs(parked: dict[str, Any]):
    first = parked["first"]
    assert first["ok"] and first["mutations"] >= 1
    assert first["phases"][0]["steps"][0] == first["phases"][0]["steps"][0] | {"name": "nodegroup-to-zero",
                                                                               "status": "done"}
    assert parked["scaling"]["minSize"] == 0 and parked["scaling"]["desiredSize"] == 0
    outputs = parked["outputs"]
    resources = {row["resource"] for row in outputs["still_costing"]}
    assert {f"eks cluster {DEPLOYMENT}-cluster", f"kinesis stream {DEPLOYMENT}-telemetry",
            "load balancer of service radstream/triton-svc", f"load balancer {DEPLOYMENT}-door",
            f"web acl {DEPLOYMENT}-door"} <= resources
    assert not any(r.startswith("eks nodegroup") for r in resources)  # parked: no node bills any more
    # The private path bills while parked: the NAT gateway, its address, the interface endpoint per zone.
    assert {"nat gateways", "public IPv4 addresses", "vpc interface endpoints"} <= resources
    assert outputs["idle_usd_per_hour"] > 0 and outputs["idle_usd_per_month"] > outputs["idle_usd_per_hour"]
    assert "still costing" in parked["stderr"] and "idle cost" in parked["stderr"]


def test_a_second_phase7_run_changes_nothing(parked: dict[str, Any]):
    assert parked["again"]["ok"] and parked["again"]["mutations"] == 0


def test_teardown_leaves_nothing_tagged(project: Path, torn_down: dict[str, Any]):
    from radstream.aws.inventory import deployment_resources

    result = torn_down["result"]
    assert torn_down["code"] == 0, result["error"]
    assert result["ok"] and result["leftovers"] == []
    assert {p["status"] for p in result["phases"] if p["number"] <= 5 or p["number"] == 7} == {"destroyed"}
    assert deployment_resources(lambda service: aws(project, service), DEPLOYMENT) == []
    assert aws(project, "ec2").describe_launch_templates()["LaunchTemplates"] == []


def test_teardown_leaves_no_piece_of_the_network(project: Path, network: dict[str, Any], torn_down: dict[str, Any]):
    assert torn_down["code"] == 0, torn_down["result"]["error"]
    ec2, in_vpc = aws(project, "ec2"), [{"Name": "vpc-id", "Values": [network["vpc"]]}]
    assert ec2.describe_vpcs(Filters=TAGGED)["Vpcs"] == []
    assert network["vpc"] not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert ec2.describe_subnets(Filters=in_vpc)["Subnets"] == []
    assert ec2.describe_network_interfaces(Filters=in_vpc)["NetworkInterfaces"] == []
    assert not [e for e in ec2.describe_network_interfaces()["NetworkInterfaces"] if DEPLOYMENT in e.get("Description", "")]
    assert ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"] == []
    assert ec2.describe_internet_gateways(Filters=TAGGED)["InternetGateways"] == []
    assert ec2.describe_addresses(Filters=TAGGED)["Addresses"] == []
    # EC2 lists deleted NAT gateways and endpoints for a while; moto ignores tag filters on NAT gateways.
    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["VpcId"] == network["vpc"]]
    assert {n["State"] for n in nats} <= {"deleted"}
    endpoints = ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"]
    assert {e["State"].lower() for e in endpoints} <= {"deleted"}
    # The public door: its load balancer, target group, web ACL and the local front it led to.
    assert aws(project, "elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert aws(project, "elbv2").describe_target_groups()["TargetGroups"] == []
    assert aws(project, "wafv2").list_web_acls(Scope="REGIONAL")["WebACLs"] == []
    assert json.loads((project / ".radstream" / "load-balancers.json").read_text()) == {}


def test_a_second_teardown_has_nothing_to_do(project: Path, torn_down: dict[str, Any]):
    code, result, _ = radstream(project, "teardown", "--yes")
    assert code == 0
    assert result == result | {"ok": True, "mutations": 0, "phases": [], "leftovers": [],
                               "message": "nothing to tear down"}


def test_teardown_stops_the_sandbox_when_asked(project: Path, torn_down: dict[str, Any]):
    from radstream.sandbox import daemon

    assert daemon.status(project / ".radstream")["running"]
    code, result, _ = radstream(project, "teardown", "--yes", "--stop-sandbox")
    assert code == 0 and result["ok"]
    assert not daemon.status(project / ".radstream")["running"]


@pytest.fixture
def fresh_project(tmp_path: Path) -> Iterator[Path]:
    from radstream.sandbox import daemon

    (tmp_path / "radstream.yaml").write_text("target: sandbox\ndeployment: rs-fresh\n")
    try:
        yield tmp_path
    finally:
        daemon.stop(tmp_path / ".radstream")


def test_dry_run_on_a_fresh_project_lists_changes_and_changes_nothing(fresh_project: Path):
    from radstream.aws.inventory import deployment_resources

    # The plan needs a world to read: the free local sandbox is started, but nothing is deployed.
    code, plan, _ = radstream(fresh_project, "up", "--dry-run")
    assert code == 0 and plan["ok"] and plan["dry_run"] and plan["mutations"] == 0
    foundation = plan["phases"][0]
    assert foundation["number"] == 0 and foundation["error"] is None
    assert {c["action"] for c in foundation["changes"]} == {"create"}
    assert {"s3 bucket", "kinesis stream", "state machine", "eks cluster"} <= {c["resource"] for c in foundation["changes"]}
    code, detailed, _ = radstream(fresh_project, "plan", "--detailed-exitcode")
    assert code == 2 and detailed["ok"] and detailed["phases"][0]["changes"]  # as Terraform: 2 means changes
    assert not (fresh_project / ".radstream" / "state.json").exists()
    assert deployment_resources(lambda service: aws(fresh_project, service), "rs-fresh") == []


def test_teardown_of_a_project_never_deployed_starts_nothing(fresh_project: Path):
    code, result, _ = radstream(fresh_project, "teardown", "--yes")
    assert code == 0 and result["message"] == "nothing to tear down" and result["leftovers"] == []
    assert not (fresh_project / ".radstream" / "sandbox.json").exists()
