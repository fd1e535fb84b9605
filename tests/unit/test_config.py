from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from radstream import config
from radstream.errors import ConfigError


def test_template_is_a_valid_config_with_the_defaults():
    settings = config.validate(yaml.safe_load(config.template()), "template")
    assert settings == config.Config()
    assert settings.cluster_name == "radstream-cluster"



def test_explicit_missing_file_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml", environ={})


@pytest.mark.parametrize(
    ("document", "field", "allowed"),
    [
        ("target: gcp\n", "target", "'sandbox' or 'aws'"),
        ("deployment: Bad_Name\n", "deployment", "must match"),
        ("region: moon-1\n", "region", "must match"),
        ("nodegroup:\n  min_size: 3\n  desired_size: 1\n", "nodegroup", "min_size <= desired_size <= max_size"),
        ("nodegroup:\n  capacity_type: CHEAP\n", "nodegroup.capacity_type", "'ON_DEMAND' or 'SPOT'"),
        ("triton:\n  replicas: 0\n", "triton.replicas", "greater than or equal to 1"),
        ("triton:\n  replica: 2\n", "triton.replica", "not a known setting"),
        ("aws:\n  endpoint_url: localhost:4566\n", "aws.endpoint_url", "http://"),
    ],
)
def test_invalid_configs_name_the_field_the_file_and_what_is_allowed(tmp_path: Path, document, field, allowed):
    path = tmp_path / "radstream.yaml"
    path.write_text(document)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    message = str(caught.value)
    assert f"{field}:" in message
    assert allowed in message
    assert str(path) in message
    assert caught.value.exit_code == 2


def test_yaml_syntax_errors_and_non_mappings_are_rejected(tmp_path: Path):
    path = tmp_path / "radstream.yaml"
    path.write_text("target: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path, environ={})
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        config.load(path, environ={})


def test_environment_overrides_nested_settings_with_types(tmp_path: Path):
    path = tmp_path / "radstream.yaml"
    path.write_text("nodegroup:\n  instance_type: t3.small\n")
    loaded = config.load(
        path,
        environ={
            "RADSTREAM_TARGET": "aws",
            "RADSTREAM_NODEGROUP__INSTANCE_TYPE": "t3.large",
            "RADSTREAM_NODEGROUP__MAX_SIZE": "5",
            "RADSTREAM_CONFIG": "ignored",
            # The sandbox daemon's own knobs are not settings (an unknown setting would exit 2).
            "RADSTREAM_SANDBOX_TOKEN_SECONDS": "2",
            "RADSTREAM_SANDBOX_ROLE_PROPAGATION_SECONDS": "0",
            "OTHER": "x",
        },
    )
    assert loaded.settings.target == "aws"
    assert loaded.settings.nodegroup.instance_type == "t3.large"
    assert loaded.settings.nodegroup.max_size == 5


def test_bad_environment_override_is_reported_with_its_source(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        config.load(None, environ={"RADSTREAM_TRITON__BUILDER": "kaniko"})
    assert "triton.builder" in str(caught.value)
    assert "RADSTREAM_* environment" in str(caught.value)


def test_missing_default_file_gives_defaults(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = config.load(None, environ={})
    assert loaded.settings.target == "sandbox"
    assert not loaded.exists
    assert loaded.state_dir == tmp_path.resolve() / ".radstream"


def test_firehose_buffers_briefly_on_the_sandbox_unless_told_otherwise():
    assert config.validate({}, "x").pipeline.firehose_buffer_seconds == 1
    assert config.validate({"target": "aws"}, "x").pipeline.firehose_buffer_seconds == 60
    explicit = config.validate({"pipeline": {"firehose_buffer_seconds": 30}}, "x")
    assert explicit.pipeline.firehose_buffer_seconds == 30


def _nodegroup_error(tmp_path: Path, nodegroup: dict) -> str:
    path = tmp_path / "radstream.yaml"
    path.write_text(yaml.safe_dump({"nodegroup": nodegroup}))
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    assert caught.value.exit_code == 2 and str(path) in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("taint, problem", [
    ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, "NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE"),
    ({"key": "dedicated", "effect": "NO_EVICT"}, "effect 'NO_EVICT'"),
    ({"key": "-dedicated", "effect": "NO_SCHEDULE"}, "key '-dedicated'"),
    ({"key": "a" * 64, "effect": "NO_SCHEDULE"}, "1-63 characters"),
    ({"key": "Example.COM/gpu", "effect": "NO_SCHEDULE"}, "DNS subdomain"),
    ({"key": "dedicated", "value": "gpu group", "effect": "NO_SCHEDULE"}, "value 'gpu group'"),
    ({"key": "dedicated", "value": "v" * 64, "effect": "NO_EXECUTE"}, "value"),
    ({"key": "dedicated"}, "a key, an effect"),
    ({"key": "dedicated", "effect": "NO_SCHEDULE", "operator": "Equal"}, "nothing else"),
])
def test_taints_eks_would_refuse_are_refused_before_any_change(tmp_path: Path, taint, problem):
    message = _nodegroup_error(tmp_path, {"taints": [taint]})
    assert "nodegroup.taints:" in message and problem in message


def test_taints_and_labels_eks_accepts_pass():
    settings = config.validate({"nodegroup": {
        "labels": {"role": "inference", "example.com/tier": "gpu_1.a", "empty": ""},
        "taints": [{"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"},
                   {"key": "dedicated", "value": "inference", "effect": "PREFER_NO_SCHEDULE"},
                   {"key": "spot", "value": "true", "effect": "NO_EXECUTE"}],
    }}, "test")
    assert len(settings.nodegroup.taints) == 3


@pytest.mark.parametrize("labels, problem", [
    ({"role": "in ference"}, "value 'in ference'"),
    ({"role/": "x"}, "key 'role/'"),
    ({"/role": "x"}, "DNS subdomain"),
    ({"a/b/c": "x"}, "DNS subdomain"),
    ({"role": "x" * 64}, "1-63 characters"),
    ({"r" * 64: "x"}, "1-63 characters"),
])
def test_labels_outside_kubernetes_syntax_are_refused(tmp_path: Path, labels, problem):
    message = _nodegroup_error(tmp_path, {"labels": labels})
    assert "nodegroup.labels:" in message and problem in message


def test_an_instance_type_missing_from_the_sizing_table_says_how_to_add_it(tmp_path: Path):
    message = _nodegroup_error(tmp_path, {"instance_type": "m7i.large"})
    assert "nodegroup.instance_type:" in message
    assert "radstream/kube/capacity.py" in message and "t3.medium" in message
    assert "describe-instance-types --instance-types m7i.large" in message


@pytest.mark.parametrize("sizes, problem", [
    ({"min_size": 0, "desired_size": 0, "max_size": 0}, "greater than or equal to 1"),
    ({"min_size": 0, "desired_size": 3, "max_size": 2}, "min_size <= desired_size <= max_size"),
    ({"min_size": 1, "desired_size": 1, "max_size": 451}, "less than or equal to 450"),
])
def test_sizes_eks_refuses_are_refused(tmp_path: Path, sizes, problem):
    assert problem in _nodegroup_error(tmp_path, sizes)


def test_eks_sized_nodegroups_up_to_its_node_limit_pass():
    assert config.validate({"nodegroup": {"min_size": 0, "desired_size": 120, "max_size": 450}}, "t").nodegroup
