"""moto's EC2 and Lambda, made to treat a VPC as AWS does where teardown depends on it:

- a function with VpcConfig gets requester-managed ENIs (InterfaceType lambda, "AWS Lambda VPC
  ENI-<function>-…") in its subnets with its security groups; once the function is deleted, or its
  VpcConfig changed or removed, they stay RADSTREAM_SANDBOX_LAMBDA_ENI_SECONDS more (minutes on
  AWS: Lambda's hyperplane ENIs are released after the function is gone);
- DeleteSecurityGroup and DeleteSubnet refuse with DependencyViolation while an ENI uses them
  (moto deletes them under it);
- a NAT gateway stays "deleting" RADSTREAM_SANDBOX_NAT_DELETE_SECONDS, then releases its ENI and
  Elastic IP (moto leaves the ENI behind, holding the subnet forever).

Installed by moto_fixes.install() and by the unit tests' conftest for in-process moto."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any, Callable

ENI_ENV, NAT_ENV = "RADSTREAM_SANDBOX_LAMBDA_ENI_SECONDS", "RADSTREAM_SANDBOX_NAT_DELETE_SECONDS"
_DEFAULT_SECONDS = 1.0
_PREFIX = "AWS Lambda VPC ENI-"


def _seconds(variable: str) -> float:
    return float(os.environ.get(variable, _DEFAULT_SECONDS))


def _later(variable: str, action: Callable[[], None]) -> None:
    delay = _seconds(variable)
    if delay <= 0:
        action()
        return
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()


def _ec2(lambda_backend: Any) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[lambda_backend.account_id][lambda_backend.region_name]


def _function_enis(ec2: Any, name: str) -> list[Any]:
    return [e for e in list(ec2.enis.values()) if (e.description or "").startswith(f"{_PREFIX}{name}-")]


def _attach(lambda_backend: Any, name: str, vpc_config: dict[str, Any] | None) -> None:
    ec2 = _ec2(lambda_backend)
    config = vpc_config or {}
    groups = list(config.get("SecurityGroupIds") or [])
    current = {e.subnet.id for e in _function_enis(ec2, name) if sorted(g.id for g in e._group_set) == sorted(groups)}
    stale = [e for e in _function_enis(ec2, name) if e.subnet.id not in config.get("SubnetIds", [])
             or sorted(g.id for g in e._group_set) != sorted(groups)]
    _release(ec2, stale)
    for subnet_id in config.get("SubnetIds") or []:
        if subnet_id in current:
            continue
        try:
            subnet = ec2.get_subnet(subnet_id)
        except Exception:  # noqa: BLE001 - moto accepts unknown subnets in VpcConfig; no ENI there
            continue
        eni = ec2.create_network_interface(subnet, None, group_ids=groups,
                                           description=f"{_PREFIX}{name}-{uuid.uuid4()}")
        eni.interface_type = "lambda"
        eni.requester_managed = True


def _release(ec2: Any, enis: list[Any]) -> None:
    def release() -> None:
        for eni in enis:
            ec2.enis.pop(eni.id, None)

    if enis:
        _later(ENI_ENV, release)


def function_gets_enis(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        fn = original(self, spec)
        _attach(self, fn.function_name, spec.get("VpcConfig"))
        return fn

    return create_function


def configuration_moves_enis(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_function_configuration(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
        result = original(self, function_name, qualifier, body)
        if "VpcConfig" in body:
            _attach(self, self.get_function(function_name, qualifier).function_name, body["VpcConfig"])
        return result

    return update_function_configuration


def deleted_function_keeps_enis_a_while(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_function(self: Any, function_name: str, qualifier: str | None = None) -> None:
        name = self.get_function(function_name, qualifier).function_name
        original(self, function_name, qualifier)
        _release(_ec2(self), _function_enis(_ec2(self), name))

    return delete_function


def _violation(message: str) -> Exception:
    from moto.ec2.exceptions import DependencyViolationError

    return DependencyViolationError(message)


def group_in_use_is_kept(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
        users = [e.id for e in list(self.enis.values()) if group_id and group_id in [g.id for g in e._group_set]]
        if users:
            raise _violation(f"resource {group_id} has a dependent object")
        return original(self, name, group_id)

    return delete_security_group


def subnet_in_use_is_kept(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_subnet(self: Any, subnet_id: str) -> Any:
        if any(e.subnet.id == subnet_id for e in list(self.enis.values())):
            raise _violation(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return original(self, subnet_id)

    return delete_subnet


def nat_gateway_deletes_slowly(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_nat_gateway(self: Any, nat_gateway_id: str) -> Any:
        nat = self.nat_gateways.get(nat_gateway_id)
        if nat is None or nat.state in ("deleting", "deleted"):
            return original(self, nat_gateway_id)
        nat.state = "deleting"

        def finish() -> None:
            nat.state = "deleted"
            address = next((a for a in self.addresses if a.eni is nat._eni), None)
            if address is not None:
                address.eni, address.association_id = None, None
            self.enis.pop(nat._eni.id, None)

        _later(NAT_ENV, finish)
        return nat

    return delete_nat_gateway


def install(wrap: Callable[[type, str, Callable[..., Any]], None]) -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.ec2.models import EC2Backend

    wrap(LambdaBackend, "create_function", function_gets_enis)
    wrap(LambdaBackend, "update_function_configuration", configuration_moves_enis)
    wrap(LambdaBackend, "delete_function", deleted_function_keeps_enis_a_while)
    wrap(EC2Backend, "delete_security_group", group_in_use_is_kept)
    wrap(EC2Backend, "delete_subnet", subnet_in_use_is_kept)
    wrap(EC2Backend, "delete_nat_gateway", nat_gateway_deletes_slowly)
