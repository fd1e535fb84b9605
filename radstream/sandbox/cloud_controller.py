"""The sandbox's stand-in for the AWS cloud controller's service controller: a LoadBalancer Service
gets a Classic ELB and its security group in the emulated account, made and removed as EKS does.

As on EKS: the load balancer is named "a" + the Service's UID without dashes (32 characters), its
security group `k8s-elb-<lb name>`; both carry `kubernetes.io/cluster/<cluster>`=owned,
`kubernetes.io/service-name`=<ns>/<name> and the Service's additional-resource-tags annotation; the
listeners are the Service's ports (to its node ports), in the cluster's subnets, and its security
group admits the Service's loadBalancerSourceRanges (else 0.0.0.0/0) on them. As the in-tree AWS
provider does, the annotations are read when the load balancer is made, and later changes to them
are ignored (kubernetes/kubernetes#64251): `aws-load-balancer-internal` makes the scheme internal,
`aws-load-balancer-ssl-cert` (an ACM ARN, which must exist: else no load balancer, as AWS answers
CertificateNotFound) makes the `ssl-ports` listeners HTTPS (SSL with a tcp/ssl backend protocol),
the others following `backend-protocol`. An HTTPS listener terminates TLS for real: `tls_port`
starts nginx (radstream.sandbox.tls_front) with the certificate and key imported into the emulated
ACM, read from moto's backend in this process. When the emulated
account has no ACTIVE cluster, nothing is made and nothing is deleted: a cluster deleted before its
Services leaves their load balancers behind, billed, as on AWS."""

from __future__ import annotations

import logging
from typing import Any

from radstream.aws import error_code
from radstream.kube.manifests import BACKEND_PROTOCOL_ANNOTATION, INTERNAL_ANNOTATION, SSL_CERT_ANNOTATION, is_ssl_port
from radstream.sandbox.tls_front import TlsFronts

log = logging.getLogger(__name__)

ADDITIONAL_TAGS_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-additional-resource-tags"
CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
SERVICE_NAME_TAG = "kubernetes.io/service-name"

Obj = dict[str, Any]


def load_balancer_name(service: Obj) -> str:
    return ("a" + service["metadata"]["uid"].replace("-", ""))[:32]


def additional_tags(service: Obj) -> dict[str, str]:
    """The annotation's "k1=v1,k2=v2" as a dict (a key without "=" gets an empty value)."""
    text = (service["metadata"].get("annotations") or {}).get(ADDITIONAL_TAGS_ANNOTATION, "")
    pairs = (item.strip().partition("=") for item in text.split(",") if item.strip())
    return {key.strip(): value.strip() for key, _, value in pairs}


def listeners(service: Obj) -> list[Obj]:
    """The Classic ELB listeners the in-tree provider makes for the Service's ports."""
    annotations = service["metadata"].get("annotations") or {}
    backend = annotations.get(BACKEND_PROTOCOL_ANNOTATION, "tcp").upper()
    made = []
    for port in service["spec"].get("ports") or []:
        listener: Obj = {"LoadBalancerPort": port["port"], "InstancePort": port.get("nodePort") or port["port"],
                         "Protocol": backend, "InstanceProtocol": backend}
        if is_ssl_port(service, port):
            listener["Protocol"] = "HTTPS" if backend in ("HTTP", "HTTPS") else "SSL"
            listener["SSLCertificateId"] = annotations[SSL_CERT_ANNOTATION]
        made.append(listener)
    return made


def is_internal(service: Obj) -> bool:
    return str((service["metadata"].get("annotations") or {}).get(INTERNAL_ANNOTATION, "")).lower() in ("true", "0.0.0.0/0")


def resource_tags(service: Obj, cluster: str) -> dict[str, str]:
    meta = service["metadata"]
    return {**additional_tags(service), CLUSTER_TAG_PREFIX + cluster: "owned",
            SERVICE_NAME_TAG: f"{meta['namespace']}/{meta['name']}"}


class CloudController:
    """Kubelet hooks: `provision(service)` -> the load balancer's DNS name (None: not yet), and
    `release(service)` -> True once the load balancer and its security group are gone."""

    def __init__(self, aws_endpoint: str, region: str, fronts: TlsFronts | None = None) -> None:
        self.aws_endpoint, self.region, self.fronts = aws_endpoint, region, fronts
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            from radstream.sandbox import SANDBOX_CREDENTIALS

            self._clients[service] = boto3.client(
                service, region_name=self.region, endpoint_url=self.aws_endpoint, **SANDBOX_CREDENTIALS,
                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
        return self._clients[service]

    def _cluster(self) -> Obj | None:
        """The emulated account's ACTIVE cluster (the emulator is one Kubernetes cluster)."""
        eks = self._client("eks")
        for name in sorted(eks.list_clusters()["clusters"]):
            cluster = eks.describe_cluster(name=name)["cluster"]
            if cluster.get("status") == "ACTIVE":
                return cluster
        return None

    def _described(self, name: str) -> Obj | None:
        try:
            return self._client("elb").describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
        except Exception as error:
            if error_code(error) == "LoadBalancerNotFound":
                return None
            raise

    def _security_group(self, name: str) -> str | None:
        groups = self._client("ec2").describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [f"k8s-elb-{name}"]}])["SecurityGroups"]
        return groups[0]["GroupId"] if groups else None

    def provision(self, service: Obj) -> str | None:
        name = load_balancer_name(service)
        found = self._described(name)
        if found is not None:
            return found["DNSName"]
        cluster = self._cluster()
        if cluster is None:
            return None
        ec2, meta = self._client("ec2"), service["metadata"]
        subnets = cluster["resourcesVpcConfig"]["subnetIds"]
        vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
        tags = [{"Key": k, "Value": v} for k, v in resource_tags(service, cluster["name"]).items()]
        wanted = listeners(service)
        missing = self._missing_certificates(wanted)
        if missing:
            log.warning("cloud controller: no load balancer for %s/%s: CertificateNotFound %s",
                        meta["namespace"], meta["name"], ", ".join(missing))
            return None
        group = self._security_group(name)
        if group is None:
            group = ec2.create_security_group(
                GroupName=f"k8s-elb-{name}", VpcId=vpc,
                Description=f"Security group for Kubernetes ELB {name} ({meta['namespace']}/{meta['name']})",
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])["GroupId"]
            ranges = service["spec"].get("loadBalancerSourceRanges") or ["0.0.0.0/0"]
            if wanted:
                ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": lb["LoadBalancerPort"], "ToPort": lb["LoadBalancerPort"],
                     "IpRanges": [{"CidrIp": cidr} for cidr in ranges]} for lb in wanted])
        self._client("elb").create_load_balancer(
            LoadBalancerName=name, Subnets=subnets, SecurityGroups=[group], Tags=tags, Listeners=wanted,
            Scheme="internal" if is_internal(service) else "internet-facing")
        log.info("cloud controller: load balancer %s for %s/%s", name, meta["namespace"], meta["name"])
        created = self._described(name)
        return created["DNSName"] if created is not None else None  # not listed yet: asked again next pass

    def _missing_certificates(self, wanted: list[Obj]) -> list[str]:
        missing = []
        for arn in {lb["SSLCertificateId"] for lb in wanted if "SSLCertificateId" in lb}:
            try:
                self._client("acm").describe_certificate(CertificateArn=arn)
            except Exception as error:
                if error_code(error) not in ("ResourceNotFoundException", "ValidationException"):
                    raise
                missing.append(arn)
        return missing

    def tls_port(self, service: Obj, service_port: int, upstream_port: int) -> int | None:
        """The local port where the load balancer's HTTPS listener on `service_port` terminates TLS
        in front of `upstream_port`; None while there is no such listener or front."""
        name = load_balancer_name(service)
        found = self._described(name) if self.fronts is not None else None
        listener = next((d["Listener"] for d in (found or {}).get("ListenerDescriptions", [])
                         if d["Listener"]["LoadBalancerPort"] == service_port and d["Listener"].get("SSLCertificateId")),
                        None)
        if listener is None or self.fronts is None:
            return None
        certificate, key = imported_certificate(listener["SSLCertificateId"])
        return self.fronts.ensure(name, certificate, key, upstream_port)

    def release(self, service: Obj) -> bool:
        if self._cluster() is None:
            return False  # no controller runs without its cluster: what it made stays
        name = load_balancer_name(service)
        if self.fronts is not None:
            self.fronts.remove(name)
        if self._described(name) is not None:
            self._client("elb").delete_load_balancer(LoadBalancerName=name)
        group = self._security_group(name)
        if group is not None:
            self._client("ec2").delete_security_group(GroupId=group)
        log.info("cloud controller: load balancer %s released", name)
        return True


def imported_certificate(arn: str) -> tuple[bytes, bytes]:
    """(certificate, private key) PEM of an imported certificate, from moto's ACM in this process:
    ACM's API never returns an imported certificate's key, but the load balancer has it."""
    from moto.acm.models import acm_backends

    _, _, _, region, account, _ = arn.split(":", 5)
    bundle = acm_backends[account][region].get_certificate(arn)
    return bundle.cert, bundle.key
