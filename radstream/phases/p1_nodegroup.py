"""Phase 1: replace the undersized nodegroup.

The plan's problem: the cluster's only nodegroup is a t3.micro, whose 4-pod limit is used up by
the pods every EKS cluster runs, so Triton can never be scheduled. The preflight says so with the
numbers; then the target nodegroup (t3.medium by default, optionally GPU or spot) is created and
its nodes awaited, the old nodegroups' nodes are cordoned and drained (PodDisruptionBudgets
honoured, bounded by nodegroup.drain_timeout_seconds) and those nodegroups are deleted. Old means
this deployment's (tagged radstream:deployment=<id>) or listed in nodegroup.replace: anyone else's
nodegroups, e.g. in an adopted cluster, are left alone, and one named like the target is refused.

A nodegroup EKS gives up on (CREATE_FAILED, e.g. NodeCreationFailure when the nodes never join)
fails the phase at once with the health issues EKS reports; the next run deletes it and creates it
again when this deployment created it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from radstream.errors import RadstreamError
from radstream.names import TAG_DEPLOYMENT
from radstream.phases.base import Change, DriftStep, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.aws.eks import NodegroupSpec
    from radstream.context import Context
    from radstream.kube.capacity import Preflight

PHASE = 1
NODEGROUP_TIMEOUT_S = 1800  # EKS takes 3-10 minutes to create or delete a nodegroup
NODES_READY_TIMEOUT_S = 900


def _spec(ctx: Context) -> NodegroupSpec:
    from radstream.aws.eks import NodegroupSpec
    from radstream.kube.capacity import instance_type

    ng = ctx.config.nodegroup
    return NodegroupSpec(ng.instance_type, ng.capacity_type, ng.min_size, ng.desired_size, ng.max_size,
                         dict(ng.labels), [dict(t) for t in ng.taints], gpu=instance_type(ng.instance_type).gpus > 0,
                         disk_gib=ng.disk_gib)


KEEP_DETAIL = "not this deployment's; list it in nodegroup.replace to replace it"


def replacement(tags: Mapping[str, Mapping[str, str]], target: str, deployment: str,
                listed: Collection[str]) -> tuple[list[str], list[str]]:
    """(to replace, to keep) among a cluster's nodegroups (name -> tags) other than the target:
    this deployment's and those nodegroup.replace lists are replaced, anyone else's kept."""
    others = sorted(name for name in tags if name != target)
    replace = [name for name in others if tags[name].get(TAG_DEPLOYMENT) == deployment or name in listed]
    return replace, [name for name in others if name not in replace]


def _described_others(ctx: Context) -> dict[str, dict[str, Any]]:
    """The cluster's other nodegroups, described (one deleted meanwhile is left out)."""
    from radstream.aws.eks import describe_nodegroup, list_nodegroups

    eks, cluster = ctx.client("eks"), ctx.config.cluster_name
    found = {name: describe_nodegroup(eks, cluster, name) for name in list_nodegroups(eks, cluster)
             if name != ctx.config.nodegroup.name}
    return {name: ng for name, ng in found.items() if ng is not None}


def _split(ctx: Context, described: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    ng = ctx.config.nodegroup
    tags = {name: found.get("tags") or {} for name, found in described.items()}
    return replacement(tags, ng.name, ctx.names.deployment, ng.replace)


def _old_nodegroups(ctx: Context) -> list[str]:
    return _split(ctx, _described_others(ctx))[0]


def _kept_nodegroups(ctx: Context) -> list[str]:
    return _split(ctx, _described_others(ctx))[1]


def _nodes(ctx: Context, nodegroup: str) -> list[dict[str, Any]]:
    from radstream.kube.apply import kube_api, list_objects
    from radstream.kube.manifests import NODEGROUP_LABEL

    return list_objects(kube_api(ctx), "Node", labels={NODEGROUP_LABEL: nodegroup})


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def preflight(ctx: Context, instance: str, nodes: int, node_labels: dict[str, str]) -> Preflight:
    """Would the pods this cluster must run fit on `nodes` nodes of `instance`, read from the cluster:
    one pod per DaemonSet that selects such nodes, every other unfinished pod (Triton's excepted),
    the pods of the add-ons phase 1 has yet to install, and the Triton replicas."""
    from radstream.aws.eks_addons import ADDONS, PODS, describe_addon
    from radstream.kube.apply import kube_api, list_objects
    from radstream.kube.capacity import Preflight
    from radstream.kube.drain import must_move
    from radstream.kube.manifests import APP_NAME, DEVICE_PLUGIN, is_gpu

    api = kube_api(ctx)
    daemonsets = list_objects(api, "DaemonSet")
    selecting = [ds for ds in daemonsets
                 if ((ds["spec"]["template"].get("spec") or {}).get("nodeSelector") or {}).items() <= node_labels.items()]
    per_node = len(selecting)
    if is_gpu(ctx.config) and not any(ds["metadata"]["name"] == DEVICE_PLUGIN for ds in daemonsets):
        per_node += 1
    others = [p for p in list_objects(api, "Pod")
              if must_move(p) and (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != APP_NAME]
    coming = [PODS[name] for name in ADDONS if describe_addon(ctx.client("eks"), ctx.config.cluster_name, name) is None]
    return Preflight(instance, nodes, per_node + sum(n for n, _ in coming), len(others) + sum(c for _, c in coming),
                     ctx.config.triton.replicas)


def _target_preflight(ctx: Context) -> Preflight:
    from radstream.kube.manifests import NODEGROUP_LABEL

    ng = ctx.config.nodegroup
    return preflight(ctx, ng.instance_type, ng.desired_size, {**ng.labels, NODEGROUP_LABEL: ng.name})


def _current_preflights(ctx: Context) -> list[tuple[str, Preflight]]:
    """How the nodegroups being replaced fare: the t3.micro explanation."""
    from radstream.kube.capacity import INSTANCE_TYPES
    from radstream.kube.manifests import NODEGROUP_LABEL

    described, found = _described_others(ctx), []
    for name in _split(ctx, described)[0]:
        ng = described.get(name) or {}
        instance = (ng.get("instanceTypes") or ["?"])[0]
        if instance in INSTANCE_TYPES:
            size = (ng.get("scalingConfig") or {}).get("desiredSize", 0)
            found.append((name, preflight(ctx, instance, size, {**(ng.get("labels") or {}), NODEGROUP_LABEL: name})))
    return found


class TargetNodegroupStep(Step):
    name = "target-nodegroup"
    description = "create the target nodegroup and wait for its nodes to be Ready"

    def _drift(self, ctx: Context) -> list[str]:
        from radstream.aws.eks import FAILED_STATUSES, describe_nodegroup, health_issues, nodegroup_drift

        eks, cluster, name = ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name
        drift = nodegroup_drift(eks, cluster, name, _spec(ctx), ctx.names.tags(PHASE), ctx.client("ec2"))
        found = describe_nodegroup(eks, cluster, name) if "missing" not in drift else None
        if found is not None and found["status"] in FAILED_STATUSES:
            return [f"failed: {found['status']}, {health_issues(found)}"]
        if not drift and found is not None and found["status"] != "ACTIVE":
            drift = [f"status {found['status']}"]
        return drift

    def _settled(self, ctx: Context) -> bool:
        """ACTIVE yet? Raises at once on a status EKS never leaves by itself, with its health issues."""
        from radstream.aws.eks import FAILED_STATUSES, describe_nodegroup, health_issues

        name = ctx.config.nodegroup.name
        found = describe_nodegroup(ctx.client("eks"), ctx.config.cluster_name, name) or {}
        if found.get("status") in FAILED_STATUSES:
            raise RadstreamError(f"nodegroup {name} is {found['status']}: {health_issues(found)}",
                                 hint="fix what EKS reports (NodeCreationFailure: the node role needs ECR pull rights, "
                                      "e.g. AmazonEC2ContainerRegistryPullOnly, and the nodes a route to EKS and ECR), "
                                      "then run phase 1 again: it replaces the failed nodegroup")
        return found.get("status") == "ACTIVE"

    def _replace_failed(self, ctx: Context) -> None:
        """Delete the target nodegroup when EKS gave up on it, so that it is created again; only
        when this deployment created it."""
        from radstream.aws.eks import FAILED_STATUSES, delete_nodegroup, describe_nodegroup, health_issues, is_owned

        eks, cluster, name = ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name
        found = describe_nodegroup(eks, cluster, name)
        if found is None or found["status"] not in FAILED_STATUSES:
            return
        if not is_owned(found, ctx.names.deployment):
            raise RadstreamError(f"nodegroup {name} is {found['status']} ({health_issues(found)}) and was not "
                                 "created by this deployment",
                                 hint="delete it yourself, or set nodegroup.name to another name")
        ctx.log(f"nodegroup {name} is {found['status']} ({health_issues(found)}): replacing it")
        delete_nodegroup(eks, cluster, name)
        ctx.wait(f"failed nodegroup {name} deleted", lambda: describe_nodegroup(eks, cluster, name) is None,
                 timeout=NODEGROUP_TIMEOUT_S, interval=10.0)

    def _ready_nodes(self, ctx: Context) -> list[str]:
        return [n["metadata"]["name"] for n in _nodes(ctx, ctx.config.nodegroup.name) if _ready(n)]

    def check(self, ctx: Context) -> bool:
        return not self._drift(ctx) and len(self._ready_nodes(ctx)) >= ctx.config.nodegroup.desired_size

    def plan(self, ctx: Context) -> list[Change]:
        ng, drift = ctx.config.nodegroup, self._drift(ctx)
        fit = _target_preflight(ctx).explain()
        if "missing" in drift:
            detail = (f"{ng.instance_type} x{ng.desired_size} ({ng.min_size}-{ng.max_size}), {ng.capacity_type}, "
                      f"{ng.disk_gib} GiB disk; {fit}")
            changes = [Change("create", "eks nodegroup", ng.name, detail)]
        elif drift[0].startswith("failed: "):
            changes = [Change("replace", "eks nodegroup", ng.name, f"{drift[0][8:]}; delete it, then create it")]
        elif drift:
            changes = [Change("update", "eks nodegroup", ng.name, ", ".join(drift))]
        else:
            changes = [Change("run", "eks nodegroup", ng.name, f"wait for {ng.desired_size} Ready node(s)")]
        return changes + [Change("replace", "eks nodegroup", old, check.explain())
                          for old, check in _current_preflights(ctx)] + \
            [Change("keep", "eks nodegroup", name, KEEP_DETAIL) for name in _kept_nodegroups(ctx)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.eks import describe_cluster, ensure_nodegroup
        from radstream.aws.iam import role_arn
        from radstream.aws.launch_template import ensure_launch_template, node_template_data
        from radstream.kube.capacity import smallest_fitting

        ng, cluster, eks = ctx.config.nodegroup, ctx.config.cluster_name, ctx.client("eks")
        for old, check in _current_preflights(ctx):
            ctx.log(f"current nodegroup {old}: {check.explain()}")
        for name in _kept_nodegroups(ctx):
            ctx.log(f"keeping nodegroup {name}: {KEEP_DETAIL}")
        fit = _target_preflight(ctx)
        if not fit.fits:
            better = smallest_fitting(fit)
            raise RadstreamError(f"nodegroup {ng.name} would be too small: {fit.explain()}",
                                 hint=f"set nodegroup.instance_type to {better} or larger" if better
                                 else "raise nodegroup.desired_size")
        ctx.log(f"target nodegroup {ng.name}: {fit.explain()}")
        found = describe_cluster(eks, cluster)
        if found is None:
            raise RadstreamError(f"EKS cluster {cluster} does not exist", hint="run phase 0 first (radstream phase run 0)")
        node_role = (ctx.outputs(0).get("roles") or {}).get("eks-nodes") or \
            role_arn(ctx.names.account_id, ctx.names.role("eks-nodes"), ctx.names.partition)
        self._replace_failed(ctx)
        tags, ec2 = ctx.names.tags(PHASE), ctx.client("ec2")
        template = ensure_launch_template(ec2, ctx.names.launch_template(ng.name),
                                          node_template_data(ng.disk_gib, tags), tags)
        if ensure_nodegroup(eks, cluster, ng.name, _spec(ctx), node_role_arn=node_role,
                            subnet_ids=found["resourcesVpcConfig"]["subnetIds"], tags=tags,
                            launch_template=template, ec2=ec2):
            ctx.record("eks nodegroup", ng.name)
        ctx.wait(f"nodegroup {ng.name} ACTIVE", lambda: self._settled(ctx), timeout=NODEGROUP_TIMEOUT_S, interval=10.0)
        if ng.desired_size:
            # The status is read too: nodes that never join turn the nodegroup CREATE_FAILED.
            ctx.wait(f"{ng.desired_size} node(s) of {ng.name} Ready",
                     lambda: self._settled(ctx) and len(self._ready_nodes(ctx)) >= ng.desired_size,
                     timeout=NODES_READY_TIMEOUT_S, interval=2.0)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.capacity import instance_type

        ng = ctx.config.nodegroup
        return {"nodegroup": ng.name, "instance_type": ng.instance_type, "capacity_type": ng.capacity_type,
                "nodes": sorted(self._ready_nodes(ctx)), "pods_per_node": instance_type(ng.instance_type).max_pods}

    def verify(self, ctx: Context) -> None:
        drift = self._drift(ctx)
        if drift:
            raise VerifyFailed(f"nodegroup {ctx.config.nodegroup.name}: {', '.join(drift)}")

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks import delete_nodegroup, describe_nodegroup, is_owned
        from radstream.aws.launch_template import delete_launch_template

        eks, cluster, name = ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name
        found = describe_nodegroup(eks, cluster, name)
        if found is not None and not is_owned(found, ctx.names.deployment):
            ctx.log(f"nodegroup {name} was not created by this deployment: left as it is")
            return
        if delete_nodegroup(eks, cluster, name):
            ctx.wait(f"nodegroup {name} deleted", lambda: describe_nodegroup(eks, cluster, name) is None,
                     timeout=NODEGROUP_TIMEOUT_S, interval=10.0)
        # Only once its nodegroup is gone: EKS reads it for every update and scale-out.
        delete_launch_template(ctx.client("ec2"), ctx.names.launch_template(name))


class DevicePluginStep(Step):
    name = "nvidia-device-plugin"
    description = "NVIDIA device plugin DaemonSet (GPU profiles)"

    def _manifest(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.manifests import device_plugin, template_dir

        return device_plugin(ctx.config, template_dir(ctx.root))

    def check(self, ctx: Context) -> bool:
        from radstream.kube.apply import is_applied, kube_api

        return is_applied(kube_api(ctx), self._manifest(ctx))

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("create", "k8s daemonset", "kube-system/nvidia-device-plugin", "exposes nvidia.com/gpu")]

    def apply(self, ctx: Context) -> None:
        from radstream.kube.apply import apply, kube_api

        apply(kube_api(ctx), self._manifest(ctx))

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks import cluster_running
        from radstream.kube.apply import delete, kube_api
        from radstream.kube.manifests import DEVICE_PLUGIN

        # Else the DaemonSet is gone, or goes, with the cluster.
        if cluster_running(ctx.client("eks"), ctx.config.cluster_name):
            delete(kube_api(ctx), "DaemonSet", DEVICE_PLUGIN, "kube-system")


class DrainOldNodesStep(Step):
    name = "drain-old-nodes"
    description = "cordon the old nodegroups' nodes and evict their pods (PodDisruptionBudgets honoured)"

    def _old_nodes(self, ctx: Context) -> list[dict[str, Any]]:
        return [node for ng in _old_nodegroups(ctx) for node in _nodes(ctx, ng)]

    def check(self, ctx: Context) -> bool:
        from radstream.kube.apply import kube_api
        from radstream.kube.drain import pods_to_move

        api = kube_api(ctx)
        return all((n.get("spec") or {}).get("unschedulable") and not pods_to_move(api, n["metadata"]["name"])
                   for n in self._old_nodes(ctx))

    def plan(self, ctx: Context) -> list[Change]:
        timeout = ctx.config.nodegroup.drain_timeout_seconds
        return [Change("run", "k8s node", n["metadata"]["name"], f"cordon and drain (up to {timeout}s)")
                for n in self._old_nodes(ctx)]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.apply import kube_api
        from radstream.kube.drain import drain

        nodes = [n["metadata"]["name"] for n in self._old_nodes(ctx)]
        report = drain(kube_api(ctx), nodes, ctx.config.nodegroup.drain_timeout_seconds, wait=ctx.wait,
                       log=ctx.log)
        return {"drained_nodes": nodes, "evicted_pods": len(report.evicted)}


class DeleteOldNodegroupsStep(Step):
    name = "delete-old-nodegroups"
    description = "delete the old nodegroups (this deployment's, or listed in nodegroup.replace) and wait until gone"

    def check(self, ctx: Context) -> bool:
        return not _old_nodegroups(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("delete", "eks nodegroup", name, "its nodes are drained first") for name in _old_nodegroups(ctx)]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.eks import delete_nodegroup, list_nodegroups

        eks, cluster, old = ctx.client("eks"), ctx.config.cluster_name, _old_nodegroups(ctx)
        for name in old:
            delete_nodegroup(eks, cluster, name)
        ctx.wait(f"nodegroup(s) {', '.join(old)} deleted", lambda: not set(old) & set(list_nodegroups(eks, cluster)),
                 timeout=NODEGROUP_TIMEOUT_S, interval=10.0)
        return {"replaced_nodegroups": old}


ADDON_TIMEOUT_S = 900  # EKS reports an add-on ACTIVE once its pods run: minutes on fresh nodes


class AddonsStep(DriftStep):
    """Cluster add-ons that need nodes to run on, hence after the target nodegroup."""

    name = "addons"
    description = ("EKS add-ons metrics-server (the resource-metrics API Triton's HPA scales on) and "
                   "amazon-cloudwatch-observability (Container Insights)")

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.eks_addons import ADDONS, addon_drift

        eks, cluster = ctx.client("eks"), ctx.config.cluster_name
        return [("eks add-on", name, addon_drift(eks, cluster, name)) for name in ADDONS]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.eks import existing_cluster
        from radstream.aws.eks_addons import ADDONS, addon_settled, create_addon, default_version, describe_addon

        eks, cluster = ctx.client("eks"), ctx.config.cluster_name
        kubernetes = existing_cluster(eks, cluster)["version"]
        for name in ADDONS:
            if describe_addon(eks, cluster, name) is None:
                create_addon(eks, cluster, name, default_version(eks, name, kubernetes), ctx.names.tags(PHASE))
        ctx.wait(f"EKS add-ons {', '.join(ADDONS)} ACTIVE", lambda: all(addon_settled(eks, cluster, name) for name in ADDONS),
                 timeout=ADDON_TIMEOUT_S, interval=0.5, max_interval=15.0)
        return {"addons": {name: (describe_addon(eks, cluster, name) or {}).get("addonVersion") for name in ADDONS}}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks_addons import ADDONS, delete_addon, describe_addon

        eks, cluster = ctx.client("eks"), ctx.config.cluster_name
        deleting = [name for name in ADDONS if delete_addon(eks, cluster, name)]
        if deleting:
            ctx.wait(f"EKS add-on(s) {', '.join(deleting)} deleted",
                     lambda: all(describe_addon(eks, cluster, name) is None for name in deleting),
                     timeout=ADDON_TIMEOUT_S, interval=0.5, max_interval=15.0)


class NodegroupPhase(Phase):
    number = PHASE
    name = "nodegroup"
    summary = "replace the undersized nodegroup: create, wait Ready, cordon and drain, delete the old"

    def preflight(self, ctx: Context) -> None:
        """A nodegroup named like the target that someone else made: refused before any change."""
        from radstream.aws.eks import refuse_foreign_nodegroup

        refuse_foreign_nodegroup(ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name,
                                 ctx.names.deployment)

    def steps(self, ctx: Context) -> list[Step]:
        from radstream.kube.manifests import is_gpu

        gpu = [DevicePluginStep()] if is_gpu(ctx.config) else []
        return [TargetNodegroupStep(), *gpu, AddonsStep(), DrainOldNodesStep(), DeleteOldNodegroupsStep()]
