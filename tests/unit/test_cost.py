"""The cost model: price table coverage, idle cost and per-image arithmetic, Cost Explorer by tag."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from radstream.analytics.cost import (
    HOURS_PER_MONTH,
    PRICES,
    ImageWorkload,
    cost_explorer,
    cost_per_1000_images,
    idle_cost,
    success_path,
    workload_from_measurements,
)
from radstream.config import Config
from tests.conftest import REPO

DEFAULT_INVENTORY = {
    "clusters": 1,
    "nodegroups": [{"instance_type": "t3.medium", "count": 1, "disk_gb": 20, "capacity_type": "ON_DEMAND"}],
    "public_ipv4": 1,
    "kinesis_shards": 1,
    "load_balancers": [{"name": "a1b2", "kind": "clb", "service": "radstream/triton-svc"}],
}


def test_every_instance_type_the_config_offers_has_a_price():
    template = (REPO / "radstream" / "radstream.template.yaml").read_text()
    named = set(re.findall(r"\b[a-z]\d[a-z]*\.(?:nano|micro|small|medium|large|\d*xlarge)\b", template))
    assert Config().nodegroup.instance_type in PRICES["ec2_hour"]
    assert {"t3.micro", "t3.medium", "g4dn.xlarge"} <= named  # the template's own suggestions
    assert named <= set(PRICES["ec2_hour"])
    assert {"t3.small", "t3.large", "m5.large", "c5.xlarge"} <= set(PRICES["ec2_hour"])


def test_idle_cost_of_the_default_deployment():
    cost = idle_cost(DEFAULT_INVENTORY)
    by_item = {line["item"]: line for line in cost["lines"]}
    assert by_item["EKS control plane"]["per_hour"] == pytest.approx(0.10)
    assert by_item["EC2 t3.medium nodes"]["per_hour"] == pytest.approx(0.0416)
    assert by_item["Kinesis shards"]["per_month"] == pytest.approx(0.015 * HOURS_PER_MONTH)
    assert by_item["Load balancer (CLB)"]["per_hour"] == pytest.approx(0.025)
    # 20 GB of gp3 is $1.60 a month, whatever the hours.
    assert by_item["EBS gp3 root volumes (t3.medium)"]["per_month"] == pytest.approx(1.60)
    hourly = 0.10 + 0.0416 + 0.005 + 0.015 + 0.025 + 1.60 / HOURS_PER_MONTH
    assert cost["per_hour"] == pytest.approx(hourly, abs=1e-5)
    assert cost["per_month"] == pytest.approx(hourly * HOURS_PER_MONTH, abs=0.01)
    assert cost["notes"] == [] and cost["prices_as_of"]


def test_nothing_deployed_costs_nothing():
    assert idle_cost({})["per_hour"] == 0
    parked = {**DEFAULT_INVENTORY, "nodegroups": [{"instance_type": "t3.medium", "count": 0}], "public_ipv4": 0}
    assert idle_cost(parked)["per_hour"] == pytest.approx(0.10 + 0.015 + 0.025)


def test_unknown_and_spot_instances_are_flagged_not_hidden():
    cost = idle_cost({"nodegroups": [{"instance_type": "x9.huge", "count": 2},
                                     {"instance_type": "g4dn.xlarge", "count": 1, "capacity_type": "SPOT"}]})
    assert any("x9.huge" in n and "not counted" in n for n in cost["notes"])
    assert any("spot" in n for n in cost["notes"])
    assert cost["per_hour"] == pytest.approx(0.526)


def test_each_line_names_its_resource_and_where_its_quantity_was_read():
    inventory = {**DEFAULT_INVENTORY, "cluster_name": "rs-cluster", "sources": {"clusters": "eks DescribeCluster rs-cluster"},
                 "buckets": [{"name": "rs-images", "bytes": 3 * 1024**3, "source": "s3 ListObjectVersions rs-images"}]}
    by_resource = {line["resource"]: line for line in idle_cost(inventory)["lines"]}
    assert by_resource["eks cluster rs-cluster"]["source"] == "eks DescribeCluster rs-cluster"
    assert by_resource["load balancer of service radstream/triton-svc"]["item"] == "Load balancer (CLB)"
    s3 = by_resource["s3 bucket rs-images"]
    assert s3["quantity"] == pytest.approx(3.0) and s3["per_month"] == pytest.approx(3 * 0.023)


def test_a_line_is_priced_only_from_what_the_inventory_holds():
    # No load balancer, stream, bucket or repository found: no line for any of them, not a default one.
    cost = idle_cost({"clusters": 1})
    assert [line["item"] for line in cost["lines"]] == ["EKS control plane"]
    assert idle_cost({"load_balancers": [], "buckets": [], "repositories": []})["lines"] == []


def test_nat_gateways_and_interface_endpoints_bill_by_the_hour():
    cost = idle_cost({"nat_gateways": 1, "vpc_endpoints": 2, "public_ipv4": 1})
    by_item = {line["item"]: line for line in cost["lines"]}
    assert by_item["NAT gateways"]["per_hour"] == pytest.approx(0.045)
    assert by_item["VPC interface endpoints"]["per_hour"] == pytest.approx(2 * 0.01)  # one endpoint in two zones
    assert cost["per_hour"] == pytest.approx(0.045 + 0.02 + 0.005)


def test_an_on_demand_stream_is_priced_per_stream_hour():
    cost = idle_cost({"kinesis_on_demand_streams": 1, "kinesis_stream": "rs-telemetry"})
    (line,) = cost["lines"]
    assert line["resource"] == "kinesis stream rs-telemetry" and line["per_hour"] == pytest.approx(0.04)


def test_unreadable_quantities_are_said_and_unknown_load_balancers_not_priced():
    cost = idle_cost({"notes": ["1 of 1 node(s) have no EC2 instance to read"],
                      "load_balancers": [{"name": "gw", "kind": "gwlb"}]})
    assert cost["per_hour"] == 0
    assert cost["notes"][0].startswith("1 of 1 node(s)") and any("gwlb" in n for n in cost["notes"])


def test_cost_per_1000_images_arithmetic():
    work = ImageWorkload(lambda_ms={"validate": 100, "inference": 400}, lambda_memory_mb=1024)
    cost = cost_per_1000_images(work)
    lines = {line["item"]: line for line in cost["lines"]}
    assert lines["Lambda duration"]["quantity"] == pytest.approx(500.0)  # 1000 × 0.5 s × 1 GB
    assert lines["Lambda duration"]["cost"] == pytest.approx(500 * 0.0000166667)
    assert lines["Lambda requests"]["cost"] == pytest.approx(5000 * 0.2e-6)
    assert lines["Step Functions transitions"]["cost"] == pytest.approx(0.125)
    assert lines["S3 PUT requests"]["cost"] == pytest.approx(0.02)
    assert lines["S3 GET requests"]["cost"] == pytest.approx(0.0016)
    assert lines["Kinesis PUT payload units"]["quantity"] == 1000
    # a 700-byte record is billed as 5 KB by Firehose
    assert lines["Firehose ingestion"]["quantity"] == pytest.approx(1000 * 5120 / 1024**3)
    expected = 500 * 0.0000166667 + 0.001 + 0.125 + 0.02 + 0.0016 + 1000 * 0.014e-6 + 1000 * 5120 / 1024**3 * 0.029
    assert cost["per_1000_images"] == pytest.approx(expected, rel=1e-5)
    assert cost["per_image"] == pytest.approx(expected / 1000, rel=1e-4)


def test_fixed_share_spreads_the_idle_cost_over_the_measured_throughput():
    work = ImageWorkload(lambda_ms={})
    alone = cost_per_1000_images(work)["per_1000_images"]
    shared = cost_per_1000_images(work, fixed_per_hour=0.2, images_per_hour=100)
    assert shared["per_1000_images"] == pytest.approx(alone + 2.0)  # 1000 images take 10 hours


def test_the_pipeline_state_machine_success_path():
    asl = json.loads((REPO / "manifests" / "stepfunctions" / "pipeline.asl.json").read_text())
    path = success_path(asl)
    assert path[0] == "ValidateInput" and path[-1] == "SendTelemetry"
    assert "StoreFailure" not in path
    rows = [{"stage": "validate", "avg_ms": 10.0}, {"stage": "inference", "avg_ms": 30.0}, {"stage": "store", "avg_ms": None}]
    work = workload_from_measurements(rows, asl, 512)
    assert work.lambda_ms == {"validate": 10.0, "inference": 30.0}
    assert work.transitions == len(path) and work.lambda_invocations == len(path)


def test_a_looping_state_machine_is_refused():
    asl = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}
    with pytest.raises(ValueError, match="loops"):
        success_path(asl)


def test_cost_explorer_sums_every_page_by_service():
    from moto import mock_aws
    from moto.moto_api._internal.models import moto_api_backend

    def page(start: str, end: str, groups: dict[str, str], token: str | None = None) -> dict:
        result = {"ResultsByTime": [{"TimePeriod": {"Start": start, "End": end}, "Estimated": False,
                                     "Groups": [{"Keys": [k], "Metrics": {"UnblendedCost": {"Amount": v, "Unit": "USD"}}}
                                                for k, v in groups.items()]}]}
        return result | ({"NextPageToken": token} if token else {})

    with mock_aws():
        import boto3

        moto_api_backend.set_ce_cost_usage(page("2025-03-01", "2025-03-02", {"Amazon EKS": "2.4", "AWS Lambda": "0.01"}, "p2"),
                                           "123456789012")
        moto_api_backend.set_ce_cost_usage(page("2025-03-02", "2025-03-03", {"Amazon EKS": "2.4"}), "123456789012")
        ce = boto3.client("ce", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        cost = cost_explorer(ce, "rs-test", date(2025, 3, 1), date(2025, 3, 3))
    assert cost["total"] == pytest.approx(4.81)
    assert cost["by_service"] == {"Amazon EKS": pytest.approx(4.8), "AWS Lambda": pytest.approx(0.01)}
    assert [p["cost"] for p in cost["by_period"]] == [pytest.approx(2.41), pytest.approx(2.4)]
    assert cost["currency"] == "USD"


def test_prices_are_data_with_a_date():
    from radstream.analytics import cost

    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", cost.PRICES_AS_OF)
    assert all(isinstance(v, (int, float, dict)) for v in PRICES.values())


def test_a_version_past_standard_support_is_priced_at_the_extended_rate():
    standard = {"clusters": 1, "cluster_version": "1.32", "cluster_support": "STANDARD_SUPPORT", "kinesis_shards": 1}
    extended = {**standard, "cluster_version": "1.28", "cluster_support": "EXTENDED_SUPPORT"}
    assert idle_cost(standard)["per_hour"] == pytest.approx(0.10 + 0.015)
    cost = idle_cost(extended)
    assert cost["per_hour"] == pytest.approx(0.60 + 0.015)
    assert cost["lines"][0]["item"] == "EKS control plane (extended support)"
    assert any("1.28" in note and "standard support" in note for note in cost["notes"])


def test_the_doors_web_acl_bills_monthly_for_itself_and_each_rule():
    idle = idle_cost({"web_acls": [{"name": "rs-door", "rules": 5, "source": "wafv2"}],
                      "load_balancers": [{"name": "rs-door", "kind": "alb", "source": "elbv2"}]})
    by_kind = {line["kind"]: line for line in idle["lines"]}
    assert by_kind["waf"]["per_month"] == pytest.approx(5.00 + 5 * 1.00)
    assert by_kind["waf"]["resource"] == "web acl rs-door"
    assert by_kind["load_balancer"]["unit_price"] == 0.0225


def test_the_deidentification_key_bills_monthly_while_it_lives():
    idle = idle_cost({"secrets": [{"name": "rs-deid-key", "source": "secretsmanager ListSecrets rs-deid-key"}]})
    [line] = idle["lines"]
    assert (line["kind"], line["resource"]) == ("secrets", "secret rs-deid-key")
    assert line["per_month"] == pytest.approx(0.40) and idle["per_month"] == pytest.approx(0.40)
    assert idle_cost({"secrets": []})["lines"] == []  # scheduled for deletion: not listed, not billed
