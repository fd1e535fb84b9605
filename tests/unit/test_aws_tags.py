from radstream.aws.tags import from_list, missing, to_list


def test_round_trip_in_both_key_styles():
    tags = {"radstream:phase": "0", "radstream:deployment": "demo"}
    assert to_list(tags) == [
        {"Key": "radstream:deployment", "Value": "demo"},
        {"Key": "radstream:phase", "Value": "0"},
    ]
    assert from_list(to_list(tags)) == tags
    assert from_list(to_list(tags, "key", "value"), "key", "value") == tags


def test_missing_ignores_extra_tags_and_reports_changed_values():
    current = {"a": "1", "b": "old", "owner": "someone"}
    assert missing(current, {"a": "1", "b": "new", "c": "3"}) == {"b": "new", "c": "3"}
    assert missing(current, {"a": "1"}) == {}
