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
    assert config.validate({}, "x").pipeline.firehose_buffer_seconds == 5
    assert config.validate({"target": "aws"}, "x").pipeline.firehose_buffer_seconds == 60
    explicit = config.validate({"pipeline": {"firehose_buffer_seconds": 30}}, "x")
    assert explicit.pipeline.firehose_buffer_seconds == 30
