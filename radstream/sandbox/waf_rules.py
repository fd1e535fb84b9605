"""An AWS WAFv2 web ACL as ModSecurity rules: what the sandbox's ALB front (radstream.sandbox.
tls_front) enforces in place of AWS WAF. Pure: a `get_web_acl()["WebACL"]` dict in, text out.

AWS's managed groups become the OWASP Core Rule Set groups that look for the same attacks, scored
as CRS does (anomaly scoring, paranoia level 1, inbound threshold 5, 403), plus emulations of the
two AWS rules of AWSManagedRulesCommonRuleSet that matter to an inference API and have no CRS
equivalent: SizeRestrictions_BODY (a body over 8 KB, which every tensor is) and NoUserAgent_HEADER,
and the Log4JRCE rules of AWSManagedRulesKnownBadInputsRuleSet, which CRS 3.3.4 lacks.
Like AWS on an ALB, ModSecurity inspects only the first 8 KB of a body. Custom regex rules become
SecRules; a rate-based rule per client IP becomes nginx's limit_req (WafPolicy.rate_limit).

Fail closed: a statement, managed group or action this module cannot translate raises ValueError
naming the rule, so no door opens with a weaker policy than AWS would enforce. Overrides of AWS
rules other than the two emulated ones are not honoured (their CRS group keeps inspecting): that
errs on blocking."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
# AWS WAF inspects this much of a body behind an ALB; SizeRestrictions_BODY blocks bigger bodies.
BODY_INSPECTION_BYTES = 8192
DEFAULT_RATE_WINDOW_SECONDS = 300
DEFAULT_BLOCK_STATUS = 403
PARANOIA_LEVEL, INBOUND_ANOMALY_THRESHOLD = 1, 5

# CRS 3.3's request rule files, by group number.
CRS_FILES = {
    901: "REQUEST-901-INITIALIZATION.conf", 911: "REQUEST-911-METHOD-ENFORCEMENT.conf",
    920: "REQUEST-920-PROTOCOL-ENFORCEMENT.conf", 921: "REQUEST-921-PROTOCOL-ATTACK.conf",
    930: "REQUEST-930-APPLICATION-ATTACK-LFI.conf", 931: "REQUEST-931-APPLICATION-ATTACK-RFI.conf",
    932: "REQUEST-932-APPLICATION-ATTACK-RCE.conf", 941: "REQUEST-941-APPLICATION-ATTACK-XSS.conf",
    942: "REQUEST-942-APPLICATION-ATTACK-SQLI.conf", 944: "REQUEST-944-APPLICATION-ATTACK-JAVA.conf",
    949: "REQUEST-949-BLOCKING-EVALUATION.conf",
}
# The CRS groups each AWS managed group stands for.
MANAGED_GROUPS: dict[str, tuple[int, ...]] = {
    "AWSManagedRulesCommonRuleSet": (911, 920, 921, 930, 931, 941),
    "AWSManagedRulesSQLiRuleSet": (942,),
    "AWSManagedRulesKnownBadInputsRuleSet": (932, 944),
}
# Stable ids of the rules made here, outside CRS's 9xxxxx range: custom rules are
# CUSTOM_RULE_ID_BASE + their (unique) priority.
DEFAULT_BLOCK_ID, JSON_BODY_ID = 4200001, 4200002
CUSTOM_RULE_ID_BASE = 4210000
# "${jndi:…}" and its nested-lookup disguises ("${${lower:j}ndi:…}"), after URL decoding.
LOG4J_LOOKUP = r"\$\{(?:[^}]{0,16}\$\{|\s*(?:jndi|ctx)\s*:)"


@dataclass(frozen=True)
class EmulatedRule:
    """An AWS managed rule CRS 3.3 has no equivalent of, emulated one by one so that the web ACL's
    override of it (to Count) is honoured."""

    aws_name: str
    rule_id: int
    phase: int
    variables: str
    operator: str
    transformations: tuple[str, ...] = ("none",)

    def secrule(self) -> str:
        actions = [f"id:{self.rule_id}", f"phase:{self.phase}", "deny", "status:403",
                   *(f"t:{t}" for t in self.transformations), "nolog"]
        return f'SecRule {self.variables} "{self.operator}" "{",".join(actions)}"'


_LOG4J_STEPS = ("none", "urlDecodeUni", "lowercase")
EMULATED_RULES: dict[str, tuple[EmulatedRule, ...]] = {
    "AWSManagedRulesCommonRuleSet": (
        EmulatedRule("SizeRestrictions_BODY", 4200011, 1, "REQUEST_HEADERS:Content-Length",
                     f"@gt {BODY_INSPECTION_BYTES}"),
        EmulatedRule("NoUserAgent_HEADER", 4200012, 1, "&REQUEST_HEADERS:User-Agent", "@eq 0"),
    ),
    # CRS 3.3.4 predates Log4Shell's rules (944150 came later).
    "AWSManagedRulesKnownBadInputsRuleSet": (
        EmulatedRule("Log4JRCE_HEADER", 4200021, 1, "REQUEST_HEADERS", f"@rx {LOG4J_LOOKUP}", _LOG4J_STEPS),
        EmulatedRule("Log4JRCE_QUERYSTRING", 4200022, 1, "QUERY_STRING", f"@rx {LOG4J_LOOKUP}", _LOG4J_STEPS),
        EmulatedRule("Log4JRCE_URIPATH", 4200023, 1, "REQUEST_FILENAME", f"@rx {LOG4J_LOOKUP}", _LOG4J_STEPS),
        EmulatedRule("Log4JRCE_BODY", 4200024, 2, "REQUEST_BODY", f"@rx {LOG4J_LOOKUP}", _LOG4J_STEPS),
    ),
}
# The sandbox's door is always reached by IP (127.0.0.1), and AWS's groups have no such rule.
CRS_RULES_REMOVED = (920350,)  # "Host header is a numeric IP address"
# WAF's field to match -> (ModSecurity variable, phase)
_FIELDS = {"UriPath": ("REQUEST_FILENAME", 1), "QueryString": ("QUERY_STRING", 1), "Body": ("REQUEST_BODY", 2)}
_TRANSFORMATIONS = {
    "NONE": "none", "LOWERCASE": "lowercase", "URL_DECODE": "urlDecodeUni", "HTML_ENTITY_DECODE": "htmlEntityDecode",
    "COMPRESS_WHITE_SPACE": "compressWhitespace", "CMD_LINE": "cmdLine", "BASE64_DECODE": "base64Decode",
}

Obj = dict[str, Any]


@dataclass(frozen=True)
class WafPolicy:
    """ModSecurity rules (to follow `engine_config`) and the rate limit (requests, window seconds)
    per client IP, answered with `rate_limit_status` beyond it."""

    modsecurity: str
    rate_limit: tuple[int, int] | None = None
    rate_limit_status: int = DEFAULT_BLOCK_STATUS


def engine_config(directory: Path) -> str:
    """ModSecurity's engine settings for a front whose files live in `directory`. The bodies are
    patients' radiographs: no audit log, no debug log, nothing of a request written anywhere."""
    return f"""SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit {BODY_INSPECTION_BYTES}
SecRequestBodyNoFilesLimit {BODY_INSPECTION_BYTES}
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess Off
SecAuditEngine Off
SecDebugLogLevel 0
SecTmpDir {directory / "modsecurity-tmp"}
SecDataDir {directory / "modsecurity-data"}
SecArgumentSeparator &
SecCookieFormat 0
SecPcreMatchLimit 100000
SecPcreMatchLimitRecursion 100000
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/(?:[a-z0-9.-]+\\+)?json" \\
  "id:{JSON_BODY_ID},phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
"""


def policy_for(web_acl: Obj) -> WafPolicy:
    """The policy enforcing `web_acl` (a wafv2 get_web_acl()["WebACL"]). ValueError when a rule
    cannot be translated."""
    crs_groups: set[int] = set()
    emulated: list[str] = []
    custom: list[str] = []
    rate_limit: tuple[int, int] | None = None
    rate_status = DEFAULT_BLOCK_STATUS
    for rule in sorted(web_acl.get("Rules") or [], key=lambda r: r["Priority"]):
        name, statement = rule["Name"], rule["Statement"]
        if "ManagedRuleGroupStatement" in statement:
            if "Count" in (rule.get("OverrideAction") or {}):
                continue  # the whole group counts: it blocks nothing
            groups, rules = _managed_group(name, statement["ManagedRuleGroupStatement"])
            crs_groups.update(groups)
            emulated += rules
            continue
        status = _block_status(rule)
        if status is None:
            continue  # Count: matches are only counted
        if "RegexMatchStatement" in statement:
            custom.append(_regex_rule(name, rule["Priority"], statement["RegexMatchStatement"], status))
        elif "RateBasedStatement" in statement:
            if rate_limit is not None:
                raise ValueError(f"web ACL rule {name}: only one rate-based rule can be enforced")
            rate_limit, rate_status = _rate_limit(name, statement["RateBasedStatement"]), status
        else:
            raise ValueError(f"web ACL rule {name}: cannot enforce a {', '.join(statement)} here")
    lines = [*custom, *emulated]
    if crs_groups:
        lines = [*_crs_setup(), *lines, *_crs_includes(crs_groups),
                 *(f"SecRuleRemoveById {rule_id}" for rule_id in CRS_RULES_REMOVED)]
    default_status = _action_status("the default action", web_acl.get("DefaultAction") or {"Allow": {}})
    if default_status is not None:
        # No rule can allow (Allow rules are refused above): the default Block blocks everything.
        lines.append(f'SecAction "id:{DEFAULT_BLOCK_ID},phase:1,deny,status:{default_status},nolog"')
    return WafPolicy("".join(line + "\n" for line in lines), rate_limit, rate_status)


def _managed_group(name: str, group: Obj) -> tuple[tuple[int, ...], list[str]]:
    """(CRS groups, emulated AWS rules) of an AWS managed rule group."""
    group_name = group.get("Name", "")
    if group.get("VendorName") != "AWS" or group_name not in MANAGED_GROUPS:
        raise ValueError(f"web ACL rule {name}: no emulation of managed rule group "
                         f"{group.get('VendorName')}/{group_name}")
    if "ScopeDownStatement" in group:
        raise ValueError(f"web ACL rule {name}: cannot enforce a scope-down statement here")
    counted = {e["Name"] for e in group.get("ExcludedRules") or []}
    counted |= {o["Name"] for o in group.get("RuleActionOverrides") or [] if "Count" in (o.get("ActionToUse") or {})}
    return MANAGED_GROUPS[group_name], [rule.secrule() for rule in EMULATED_RULES.get(group_name, ())
                                        if rule.aws_name not in counted]


def _block_status(rule: Obj) -> int | None:
    return _action_status(f"web ACL rule {rule['Name']}", rule.get("Action") or {})


def _action_status(what: str, action: Obj) -> int | None:
    """The status a Block answers with; None for Count (and a default Allow)."""
    if "Count" in action or ("Allow" in action and what == "the default action"):
        return None
    if "Block" in action:
        custom = (action["Block"] or {}).get("CustomResponse") or {}
        return int(custom.get("ResponseCode", DEFAULT_BLOCK_STATUS))
    raise ValueError(f"{what}: cannot enforce action {', '.join(action) or 'none'} here")


def _regex_rule(name: str, priority: int, statement: Obj, status: int) -> str:
    field = statement["FieldToMatch"]
    if "SingleHeader" in field:
        header = field["SingleHeader"]["Name"]
        if not header.replace("-", "").isalnum():
            raise ValueError(f"web ACL rule {name}: header name {header!r} cannot be matched here")
        variable, phase = f"REQUEST_HEADERS:{header}", 1
    elif len(field) == 1 and next(iter(field)) in _FIELDS:
        variable, phase = _FIELDS[next(iter(field))]
    else:
        raise ValueError(f"web ACL rule {name}: cannot match field {', '.join(field)} here")
    pattern = statement["RegexString"]
    if "\n" in pattern or pattern.endswith("\\"):
        raise ValueError(f"web ACL rule {name}: regex {pattern!r} cannot be written as a SecRule")
    transformations = ["none"]
    for step in sorted(statement.get("TextTransformations") or [], key=lambda t: t["Priority"]):
        if step["Type"] not in _TRANSFORMATIONS:
            raise ValueError(f"web ACL rule {name}: cannot apply text transformation {step['Type']} here")
        if step["Type"] != "NONE":
            transformations.append(_TRANSFORMATIONS[step["Type"]])
    quoted = pattern.replace('"', '\\"')
    actions = ",".join([f"id:{CUSTOM_RULE_ID_BASE + priority}", f"phase:{phase}", "deny", f"status:{status}",
                        *(f"t:{t}" for t in transformations), "nolog"])
    return f'SecRule {variable} "@rx {quoted}" "{actions}"'


def _rate_limit(name: str, statement: Obj) -> tuple[int, int]:
    if statement.get("AggregateKeyType", "IP") != "IP" or "ScopeDownStatement" in statement:
        raise ValueError(f"web ACL rule {name}: only a rate limit per client IP without scope-down can be enforced")
    return int(statement["Limit"]), int(statement.get("EvaluationWindowSec", DEFAULT_RATE_WINDOW_SECONDS))


def nginx_rate(limit: int, window_seconds: int) -> str:
    """limit_req's rate for `limit` requests per window: whole requests a minute at the finest,
    rounded up so that a client within the limit is never refused."""
    return f"{max(1, math.ceil(limit * 60 / window_seconds))}r/m"


def _crs_setup() -> list[str]:
    # Detection rules only score (`block` resolves to pass); 949110 denies on the total.
    return [
        'SecDefaultAction "phase:1,log,noauditlog,pass"',
        'SecDefaultAction "phase:2,log,noauditlog,pass"',
        f'SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={PARANOIA_LEVEL}"',
        'SecAction "id:900110,phase:1,nolog,pass,t:none,'
        f'setvar:tx.inbound_anomaly_score_threshold={INBOUND_ANOMALY_THRESHOLD},setvar:tx.outbound_anomaly_score_threshold=4"',
        # AWS's groups allow any content type; CRS's list lacks the tensors' octet-stream.
        'SecAction "id:900220,phase:1,nolog,pass,t:none,setvar:\'tx.allowed_request_content_type='
        '|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| |text/xml| |application/xml| '
        '|application/soap+xml| |application/json| |application/octet-stream| |text/plain|\'"',
        'SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"',
    ]


def _crs_includes(groups: set[int]) -> list[str]:
    return [f"Include {CRS_RULES / CRS_FILES[group]}" for group in sorted({901, 949} | groups)]
