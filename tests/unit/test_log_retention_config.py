"""pipeline.log_retention_days takes only the periods CloudWatch Logs' PutRetentionPolicy accepts:
anything else is refused before `up` could send it."""

from __future__ import annotations

import pytest

from radstream import config
from radstream.errors import ConfigError


def test_a_retention_cloudwatch_accepts_is_taken_from_the_file_or_the_environment(tmp_path):
    path = tmp_path / "radstream.yaml"
    path.write_text("pipeline:\n  log_retention_days: 400\n")
    assert config.load(path, environ={}).settings.pipeline.log_retention_days == 400
    loaded = config.load(path, environ={"RADSTREAM_PIPELINE__LOG_RETENTION_DAYS": "14"})
    assert loaded.settings.pipeline.log_retention_days == 14
    assert config.Config().pipeline.log_retention_days == 30


@pytest.mark.parametrize("days", [0, 2, 10, 365 * 10, -1])
def test_a_retention_cloudwatch_refuses_names_the_field_and_the_allowed_values(days):
    with pytest.raises(ConfigError) as caught:
        config.validate({"pipeline": {"log_retention_days": days}}, "radstream.yaml")
    assert "pipeline.log_retention_days" in str(caught.value) and "1, 3, 5, 7, 14, 30" in str(caught.value)
