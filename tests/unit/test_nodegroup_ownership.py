"""Which of a cluster's nodegroups phase 1 replaces: this deployment's and those the config lists,
never anyone else's, never the target itself."""

from __future__ import annotations

import pytest

from radstream import config
from radstream.errors import ConfigError
from radstream.phases.p1_nodegroup import replacement

OURS = {"radstream:deployment": "rs", "radstream:phase": "1"}


def test_only_this_deployments_nodegroups_are_replaced_in_an_adopted_cluster():
    tags = {"cpu-ng": OURS, "old-ng": OURS, "theirs": {"team": "platform"}, "bare": {}}
    assert replacement(tags, "cpu-ng", "rs", []) == (["old-ng"], ["bare", "theirs"])


def test_another_deployments_tag_is_not_ours():
    tags = {"cpu-ng": OURS, "sibling": {"radstream:deployment": "rs-other"}}
    assert replacement(tags, "cpu-ng", "rs", []) == ([], ["sibling"])


def test_listed_nodegroups_are_replaced_whoever_made_them():
    tags = {"cpu-ng": {}, "legacy-micro": {}, "theirs": {"team": "platform"}, "old-ng": OURS}
    assert replacement(tags, "cpu-ng", "rs", ["legacy-micro", "not-there"]) == (["legacy-micro", "old-ng"],
                                                                               ["theirs"])


def test_the_target_is_neither_replaced_nor_kept():
    assert replacement({"cpu-ng": OURS}, "cpu-ng", "rs", []) == ([], [])


def test_the_config_refuses_to_list_the_target_itself():
    with pytest.raises(ConfigError, match="nodegroup.*cannot replace itself"):
        config.validate({"nodegroup": {"name": "cpu-ng", "replace": ["cpu-ng"]}}, "radstream.yaml")


def test_the_config_takes_nodegroup_names_to_replace():
    settings = config.validate({"nodegroup": {"replace": ["ng-legacy"]}}, "radstream.yaml")
    assert settings.nodegroup.replace == ["ng-legacy"]
    with pytest.raises(ConfigError, match="replace"):
        config.validate({"nodegroup": {"replace": ["no spaces"]}}, "radstream.yaml")
