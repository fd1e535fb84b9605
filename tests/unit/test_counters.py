from radstream.counters import MutationCounter, is_mutating


def test_mutating_operations_are_recognised_and_reads_are_not():
    for name in ("CreateBucket", "PutObject", "DeleteStateMachine", "TagResource", "UpdateFunctionConfiguration",
                 "StartExecution", "BatchDeleteImage", "AttachRolePolicy"):
        assert is_mutating(name), name
    for name in ("GetObject", "ListBuckets", "DescribeCluster", "HeadBucket", "BatchGetImage", "GetCallerIdentity"):
        assert not is_mutating(name), name


def test_kubernetes_writes_count_and_reads_do_not():
    counter = MutationCounter()
    for method in ("GET", "post", "PATCH", "DELETE", "PUT", "GET"):
        counter.record_kube(method, "/api/v1/namespaces")
    assert counter.total == 4
