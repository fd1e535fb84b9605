"""A WAFv2 web ACL as ModSecurity rules and an nginx rate limit (radstream.sandbox.waf_rules)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from radstream.sandbox.waf_rules import CRS_RULES, WafPolicy, engine_config, nginx_rate, policy_for


def managed(name: str, priority: int, group: str, count: bool = False, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Priority": priority, "OverrideAction": {"Count": {}} if count else {"None": {}},
            "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group, **extra}}}


def regex_rule(priority: int, field: dict[str, Any], pattern: str, action: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Name": f"regex-{priority}", "Priority": priority, "Action": action or {"Block": {}},
            "Statement": {"RegexMatchStatement": {"RegexString": pattern, "FieldToMatch": field,
                                                  "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}}


def acl(*rules: dict[str, Any], default: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Name": "door", "DefaultAction": default or {"Allow": {}}, "Rules": list(rules)}


def included(policy: WafPolicy) -> list[int]:
    return [int(n) for n in re.findall(r"^Include .*/REQUEST-(\d+)-", policy.modsecurity, re.MULTILINE)]


def rule_ids(policy: WafPolicy) -> list[int]:
    return [int(n) for n in re.findall(r'"id:(\d+),', policy.modsecurity)]


SIZE_OVERRIDE = {"RuleActionOverrides": [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]}


def test_common_rule_set_is_crs_protocol_lfi_rfi_xss_with_initialization_and_blocking_evaluation():
    policy = policy_for(acl(managed("common", 0, "AWSManagedRulesCommonRuleSet")))
    assert included(policy) == [901, 911, 920, 921, 930, 931, 941, 949]
    assert f"Include {CRS_RULES}/REQUEST-941-APPLICATION-ATTACK-XSS.conf" in policy.modsecurity.splitlines()
    assert "tx.paranoia_level=1" in policy.modsecurity and "tx.inbound_anomaly_score_threshold=5" in policy.modsecurity
    # Its two emulated AWS rules: bodies over 8 KB and requests without a User-Agent.
    assert 'SecRule REQUEST_HEADERS:Content-Length "@gt 8192"' in policy.modsecurity
    assert 'SecRule &REQUEST_HEADERS:User-Agent "@eq 0"' in policy.modsecurity
    assert policy.rate_limit is None


def test_an_override_to_count_drops_the_emulated_rule_and_only_it():
    policy = policy_for(acl(managed("common", 0, "AWSManagedRulesCommonRuleSet", **SIZE_OVERRIDE)))
    assert "Content-Length" not in policy.modsecurity
    assert "&REQUEST_HEADERS:User-Agent" in policy.modsecurity
    legacy = policy_for(acl(managed("common", 0, "AWSManagedRulesCommonRuleSet",
                                    ExcludedRules=[{"Name": "NoUserAgent_HEADER"}])))
    assert "User-Agent" not in legacy.modsecurity and "Content-Length" in legacy.modsecurity


def test_sqli_and_known_bad_inputs_groups():
    policy = policy_for(acl(managed("sqli", 1, "AWSManagedRulesSQLiRuleSet"),
                            managed("bad", 2, "AWSManagedRulesKnownBadInputsRuleSet")))
    assert included(policy) == [901, 932, 942, 944, 949]
    assert "jndi" in policy.modsecurity  # CRS 3.3.4 has no Log4Shell rule: emulated
    no_log4j_header = policy_for(acl(managed("bad", 2, "AWSManagedRulesKnownBadInputsRuleSet", RuleActionOverrides=[
        {"Name": "Log4JRCE_HEADER", "ActionToUse": {"Count": {}}}])))
    assert "SecRule REQUEST_HEADERS " not in no_log4j_header.modsecurity
    assert "SecRule QUERY_STRING " in no_log4j_header.modsecurity


def test_a_group_in_count_mode_blocks_nothing():
    policy = policy_for(acl(managed("common", 0, "AWSManagedRulesCommonRuleSet", count=True)))
    assert policy.modsecurity == "" and policy.rate_limit is None


def test_regex_rules_by_field_phase_and_status():
    policy = policy_for(acl(
        regex_rule(5, {"SingleHeader": {"Name": "content-length"}}, "^[0-9]{8,}$"),
        regex_rule(6, {"UriPath": {}}, "^/admin", {"Block": {"CustomResponse": {"ResponseCode": 418}}}),
        regex_rule(7, {"QueryString": {}}, 'a"b'),
        regex_rule(8, {"Body": {}}, "secret"),
        regex_rule(9, {"Body": {}}, "counted", {"Count": {}}),
    ))
    lines = policy.modsecurity.splitlines()
    assert lines == [
        'SecRule REQUEST_HEADERS:content-length "@rx ^[0-9]{8,}$" "id:4210005,phase:1,deny,status:403,t:none,nolog"',
        'SecRule REQUEST_FILENAME "@rx ^/admin" "id:4210006,phase:1,deny,status:418,t:none,nolog"',
        'SecRule QUERY_STRING "@rx a\\"b" "id:4210007,phase:1,deny,status:403,t:none,nolog"',
        'SecRule REQUEST_BODY "@rx secret" "id:4210008,phase:2,deny,status:403,t:none,nolog"',
    ]


def test_generated_ids_are_unique_and_stable():
    web_acl = acl(managed("common", 0, "AWSManagedRulesCommonRuleSet"), managed("sqli", 1, "AWSManagedRulesSQLiRuleSet"),
                  managed("bad", 2, "AWSManagedRulesKnownBadInputsRuleSet"),
                  regex_rule(3, {"SingleHeader": {"Name": "content-length"}}, "^[0-9]{8,}$"),
                  default={"Block": {}})
    ids = rule_ids(policy_for(web_acl))
    assert len(ids) == len(set(ids))
    assert ids == rule_ids(policy_for(web_acl))


def test_rate_based_rule_per_ip_becomes_the_rate_limit_with_its_response_code():
    rule = {"Name": "flood", "Priority": 4, "Action": {"Block": {"CustomResponse": {"ResponseCode": 429}}},
            "Statement": {"RateBasedStatement": {"Limit": 10, "EvaluationWindowSec": 60, "AggregateKeyType": "IP"}}}
    policy = policy_for(acl(rule))
    assert (policy.rate_limit, policy.rate_limit_status) == ((10, 60), 429)
    del rule["Statement"]["RateBasedStatement"]["EvaluationWindowSec"]
    rule["Action"] = {"Block": {}}
    assert (policy_for(acl(rule)).rate_limit, policy_for(acl(rule)).rate_limit_status) == ((10, 300), 403)
    rule["Action"] = {"Count": {}}
    assert policy_for(acl(rule)).rate_limit is None


def test_nginx_rate_is_whole_requests_a_minute_rounded_up():
    assert nginx_rate(10, 60) == "10r/m"
    assert nginx_rate(100, 300) == "20r/m"
    assert nginx_rate(15, 600) == "2r/m"
    assert nginx_rate(10, 600) == "1r/m"


def test_default_block_blocks_everything():
    policy = policy_for(acl(default={"Block": {"CustomResponse": {"ResponseCode": 451}}}))
    assert policy.modsecurity == 'SecAction "id:4200001,phase:1,deny,status:451,nolog"\n'


@pytest.mark.parametrize("rule, named", [
    (managed("fraud", 0, "AWSManagedRulesATPRuleSet"), "AWS/AWSManagedRulesATPRuleSet"),
    ({"Name": "geo", "Priority": 0, "Action": {"Block": {}},
      "Statement": {"GeoMatchStatement": {"CountryCodes": ["XX"]}}}, "GeoMatchStatement"),
    (regex_rule(0, {"Cookies": {}}, "x"), "Cookies"),
    (regex_rule(0, {"UriPath": {}}, "x", {"Captcha": {}}), "Captcha"),
    (regex_rule(0, {"UriPath": {}}, "x", {"Allow": {}}), "Allow"),
    ({"Name": "flood", "Priority": 0, "Action": {"Block": {}},
      "Statement": {"RateBasedStatement": {"Limit": 10, "AggregateKeyType": "FORWARDED_IP"}}}, "per client IP"),
    (managed("common", 0, "AWSManagedRulesCommonRuleSet", ScopeDownStatement={"ByteMatchStatement": {}}), "scope-down"),
])
def test_what_cannot_be_translated_fails_closed_naming_the_rule(rule, named):
    with pytest.raises(ValueError, match=re.escape(rule["Name"])) as refused:
        policy_for(acl(rule))
    assert named in str(refused.value)


def test_engine_config_keeps_requests_out_of_every_log_and_inspects_the_first_8_kb(tmp_path):
    text = engine_config(tmp_path)
    assert "SecAuditEngine Off" in text and "SecDebugLogLevel 0" in text and "SecDebugLog " not in text
    assert "SecRequestBodyLimit 8192" in text and "SecRequestBodyLimitAction ProcessPartial" in text
    assert f"SecTmpDir {tmp_path / 'modsecurity-tmp'}" in text and f"SecDataDir {tmp_path / 'modsecurity-data'}" in text
    assert "SecArgumentsLimit" not in text
