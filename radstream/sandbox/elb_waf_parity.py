"""moto's ELBv2 and WAFv2, made to refuse what AWS refuses around an internet-facing ALB and its
web ACL:

- CreateLoadBalancer of an application load balancer: "At least two subnets in two different
  Availability Zones must be specified" (ValidationError; moto takes one subnet, or two in one zone);
  a network load balancer's ARN reads loadbalancer/net/<name>/<id> (moto's reads .../app/...);
- DeleteTargetGroup of a target group a listener or rule forwards to: "Target group '<arn>' is
  currently in use by a listener or a rule" (ResourceInUse; moto refuses in other words);
- AssociateWebACL of anything but an ALB, API Gateway REST stage, AppSync API, Cognito user pool,
  App Runner service or Verified Access instance (a Classic ELB, an NLB): WAFInvalidParameterException
  "Error reason: The ARN isn't valid. ..., field: RESOURCE_ARN" (moto associates any ARN);
- AssociateWebACL of a resource that has a web ACL moves it to the new one: a resource has one web
  ACL (moto lists it under both, and GetWebACLForResource still answers the old one);
- DeleteWebACL of a web ACL still associated with a resource: WAFAssociatedItemException "AWS WAF
  couldn’t perform the operation because your resource is being used by another resource or it’s
  associated with another resource." (moto deletes it);
- ListResourcesForWebACL, which moto lacks: the ARNs of what the web ACL protects (what must be
  disassociated before it can be deleted).

moto already answers as AWS to DisassociateWebACL of a resource without a web ACL (success) and to
DeleteWebACL with a stale LockToken (WAFOptimisticLockException).

Installed by moto_fixes.install()."""

from __future__ import annotations

import re
from typing import Any, Callable

_TWO_ZONES = "At least two subnets in two different Availability Zones must be specified"
# moto names every load balancer ".../loadbalancer/app/..."; ELB names NLBs and GWLBs by their kind.
_ARN_KINDS = {"network": "net", "gateway": "gwy"}
_IN_USE = "Target group '{}' is currently in use by a listener or a rule"
_ASSOCIATED = ("AWS WAF couldn’t perform the operation because your resource is being used by another resource "
               "or it’s associated with another resource.")
_BAD_ARN = ("Error reason: The ARN isn't valid. A valid ARN begins with arn: and includes other information "
            "separated by colons or slashes., field: RESOURCE_ARN, parameter: {}")
# What a regional web ACL protects, by ARN.
_PROTECTABLE = re.compile(
    r"^arn:aws[a-z-]*:(elasticloadbalancing:[^:]+:\d{12}:loadbalancer/app/"
    r"|apigateway:[^:]+::/restapis/[^/]+/stages/"
    r"|appsync:[^:]+:\d{12}:apis/"
    r"|cognito-idp:[^:]+:\d{12}:userpool/"
    r"|apprunner:[^:]+:\d{12}:service/"
    r"|ec2:[^:]+:\d{12}:verified-access-instance/)")


def _waf_error(kind: str, message: str) -> Exception:
    from moto.wafv2.exceptions import WAFv2ClientError

    return WAFv2ClientError(kind, message)


def application_load_balancer_spans_two_zones(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_load_balancer(self: Any, name: str, security_groups: list[str], subnet_ids: list[str],
                             subnet_mappings: list[dict[str, str]] | None = None, **kwargs: Any) -> Any:
        from moto.ec2.exceptions import InvalidSubnetIdError
        from moto.elbv2.exceptions import ELBClientError

        ids = [*(subnet_ids or []), *(m["SubnetId"] for m in subnet_mappings or [])]
        try:
            zones = {self.ec2_backend.get_subnet(i).availability_zone for i in ids}
        except InvalidSubnetIdError:  # moto's own answer (SubnetNotFound) stands
            zones = set()
        if kwargs.get("loadbalancer_type") in (None, "application") and len(zones) == 1:
            raise ELBClientError("ValidationError", _TWO_ZONES)
        balancer = original(self, name, security_groups, subnet_ids, subnet_mappings, **kwargs)
        kind = _ARN_KINDS.get(balancer.type)
        if kind:
            old = balancer.arn
            balancer.arn = old.replace(":loadbalancer/app/", f":loadbalancer/{kind}/")
            self.load_balancers[balancer.arn] = self.load_balancers.pop(old)
            tags = self.tagging_service.list_tags_for_resource(old)["Tags"]
            self.tagging_service.delete_all_tags_for_resource(old)
            self.tagging_service.tag_resource(balancer.arn, tags)
        return balancer

    return create_load_balancer


def target_group_in_use_in_aws_words(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_target_group(self: Any, target_group_arn: str) -> Any:
        from moto.elbv2.exceptions import ResourceInUseError

        if target_group_arn in self.target_groups and self._any_listener_using(target_group_arn):
            raise ResourceInUseError(_IN_USE.format(target_group_arn))
        return original(self, target_group_arn)

    return delete_target_group


def web_acl_protects_what_waf_can(original: Callable[..., Any]) -> Callable[..., Any]:
    def associate_web_acl(self: Any, web_acl_arn: str, resource_arn: str) -> None:
        if not _PROTECTABLE.match(resource_arn):
            raise _waf_error("WAFInvalidParameterException", _BAD_ARN.format(resource_arn))
        if web_acl_arn in self.wacls:
            self.disassociate_web_acl(resource_arn)
        original(self, web_acl_arn, resource_arn)

    return associate_web_acl


def associated_web_acl_is_kept(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_web_acl(self: Any, name: str, scope: str, _id: str, lock_token: str) -> None:
        if any(w.name == name and w.id == _id and w.associated_resources for w in self.wacls.values()):
            raise _waf_error("WAFAssociatedItemException", _ASSOCIATED)
        original(self, name, scope, _id, lock_token)

    return delete_web_acl


def list_resources_for_web_acl(self: Any) -> tuple[int, dict[str, str], str]:
    import json

    arn = json.loads(self.body)["WebACLArn"]
    acl = self.wafv2_backend.wacls.get(arn)
    if acl is None:
        raise _waf_error("WAFNonexistentItemException", "AWS WAF couldn’t perform the operation because your "
                                                        "resource doesn’t exist.")
    return 200, {"Content-Type": "application/json"}, json.dumps({"ResourceArns": list(acl.associated_resources)})


def install(wrap: Callable[[type, str, Callable[..., Any]], None]) -> None:
    """Apply through moto_fixes' wrap(owner, attribute, fix)."""
    from moto.elbv2.models import ELBv2Backend
    from moto.wafv2.models import WAFV2Backend
    from moto.wafv2.responses import WAFV2Response

    WAFV2Response.list_resources_for_web_acl = list_resources_for_web_acl  # type: ignore[attr-defined]

    wrap(ELBv2Backend, "create_load_balancer", application_load_balancer_spans_two_zones)
    wrap(ELBv2Backend, "delete_target_group", target_group_in_use_in_aws_words)
    wrap(WAFV2Backend, "associate_web_acl", web_acl_protects_what_waf_can)
    wrap(WAFV2Backend, "delete_web_acl", associated_web_acl_is_kept)
