"""The public door's AWS WAF web ACL (REGIONAL scope, on the application load balancer).

AWS's quirks handled here: updates need the lock token of the last read (WAFOptimisticLockException
when another change came between); a new web ACL may not be associable for a few seconds
(WAFUnavailableEntityException, "retry your request"); and a web ACL still associated with a
resource cannot be deleted (WAFAssociatedItemException), so it is disassociated first."""

from __future__ import annotations

from typing import Any, Callable

from radstream.aws import error_code, unless_absent
from radstream.aws.tags import to_list

SCOPE = "REGIONAL"
# Seconds to wait for a new web ACL to become associable, or a disassociation to let it go.
SETTLE_TIMEOUT_S = 300
_RETRY_LATER = ("WAFUnavailableEntityException", "WAFAssociatedItemException", "WAFOptimisticLockException")

Wait = Callable[..., Any]


def _summary(wafv2: Any, name: str) -> dict[str, Any] | None:
    params: dict[str, Any] = {"Scope": SCOPE, "Limit": 100}
    while True:
        page = wafv2.list_web_acls(**params)
        found = next((acl for acl in page.get("WebACLs", []) if acl["Name"] == name), None)
        if found or not page.get("NextMarker"):
            return found
        params["NextMarker"] = page["NextMarker"]


def web_acl_arn(wafv2: Any, name: str) -> str | None:
    found = _summary(wafv2, name)
    return found["ARN"] if found else None


def web_acl_drift(wafv2: Any, name: str, wanted: dict[str, Any]) -> list[str]:
    """What differs between the live web ACL and `wanted` (CreateWebACL's DefaultAction, Rules,
    VisibilityConfig): ["missing"] when there is none."""
    found = _summary(wafv2, name)
    if found is None:
        return ["missing"]
    live = wafv2.get_web_acl(Name=name, Scope=SCOPE, Id=found["Id"])["WebACL"]
    return [key for key in ("DefaultAction", "Rules", "VisibilityConfig") if live.get(key) != wanted[key]]


def ensure_web_acl(wafv2: Any, name: str, wanted: dict[str, Any], tags: dict[str, str]) -> str:
    """Create the web ACL, or update the one of that name to `wanted`; its ARN."""
    found = _summary(wafv2, name)
    if found is None:
        return str(wafv2.create_web_acl(Name=name, Scope=SCOPE, Tags=to_list(tags), **wanted)["Summary"]["ARN"])
    live = wafv2.get_web_acl(Name=name, Scope=SCOPE, Id=found["Id"])
    if any(live["WebACL"].get(key) != wanted[key] for key in wanted):
        wafv2.update_web_acl(Name=name, Scope=SCOPE, Id=found["Id"], LockToken=live["LockToken"], **wanted)
    return str(found["ARN"])


def associated_web_acl(wafv2: Any, resource_arn: str) -> str | None:
    found = unless_absent(wafv2.get_web_acl_for_resource, "WAFNonexistentItemException", ResourceArn=resource_arn)
    return ((found or {}).get("WebACL") or {}).get("ARN")


def associate(wafv2: Any, acl_arn: str, resource_arn: str, wait: Wait) -> None:
    """Put the web ACL on the resource (replacing another), retrying while AWS has not made it usable yet."""
    if associated_web_acl(wafv2, resource_arn) == acl_arn:
        return

    def associated() -> bool:
        try:
            wafv2.associate_web_acl(WebACLArn=acl_arn, ResourceArn=resource_arn)
        except Exception as exc:
            if error_code(exc) in _RETRY_LATER:
                return False
            raise
        return True

    wait(f"web ACL associated with {resource_arn}", associated, timeout=SETTLE_TIMEOUT_S, interval=2.0,
         max_interval=10.0)


def delete_web_acl(wafv2: Any, name: str, wait: Wait) -> None:
    """Disassociate it from everything, then delete it; quiet when already gone."""
    found = _summary(wafv2, name)
    if found is None:
        return
    for resource in wafv2.list_resources_for_web_acl(WebACLArn=found["ARN"]).get("ResourceArns", []):
        unless_absent(wafv2.disassociate_web_acl, "WAFNonexistentItemException", ResourceArn=resource)

    def deleted() -> bool:
        live = unless_absent(wafv2.get_web_acl, "WAFNonexistentItemException", Name=name, Scope=SCOPE, Id=found["Id"])
        if live is None:
            return True
        try:
            wafv2.delete_web_acl(Name=name, Scope=SCOPE, Id=found["Id"], LockToken=live["LockToken"])
        except Exception as exc:
            if error_code(exc) == "WAFNonexistentItemException":
                return True
            if error_code(exc) in _RETRY_LATER:
                return False  # the disassociation has not reached every WAF node yet
            raise
        return True

    wait(f"web ACL {name} deleted", deleted, timeout=SETTLE_TIMEOUT_S, interval=2.0, max_interval=10.0)
