"""The sandbox's Container Insights agent: pod and node utilisation in percent of the node's
capacity, from the emulated metrics-server's measurements (radstream.sandbox.container_insights)."""

from radstream.sandbox.container_insights import datapoints

NODE = {"metadata": {"name": "ip-10-0-1-5"}, "status": {"capacity": {"cpu": "2", "memory": "4Gi"}}}
POD = {"metadata": {"name": "triton-abc", "namespace": "radstream"}, "spec": {"nodeName": "ip-10-0-1-5"}}


def metrics(cpu: str, memory: str, name: str = "triton-abc") -> dict:
    return {"metadata": {"name": name, "namespace": "radstream"},
            "containers": [{"name": "triton", "usage": {"cpu": cpu, "memory": memory}}]}


def values(points: list[dict], name: str, **dimensions: str) -> list[float]:
    wanted = [{"Name": "ClusterName", "Value": "c"}, *({"Name": k, "Value": v} for k, v in dimensions.items())]
    return [p["Value"] for p in points if p["MetricName"] == name and p["Dimensions"] == wanted]


def test_a_pods_use_is_a_share_of_its_node_by_pod_namespace_and_cluster():
    points = datapoints("c", [metrics("500000000n", "1048576Ki")], {("radstream", "triton-abc"): POD}, {"ip-10-0-1-5": NODE})
    assert values(points, "pod_cpu_utilization", Namespace="radstream", PodName="triton-abc") == [25.0]
    assert values(points, "pod_cpu_utilization", Namespace="radstream") == [25.0]
    assert values(points, "pod_memory_utilization") == [25.0]
    assert values(points, "node_cpu_utilization", NodeName="ip-10-0-1-5") == [25.0]
    assert all(p["Unit"] == "Percent" and p["Timestamp"].tzinfo is None for p in points)


def test_a_node_without_measured_pods_reports_zero_and_unknown_pods_are_skipped():
    points = datapoints("c", [metrics("1", "1Gi", name="gone")], {}, {"ip-10-0-1-5": NODE})
    assert values(points, "node_cpu_utilization") == [0.0]
    assert not [p for p in points if p["MetricName"].startswith("pod_")]
