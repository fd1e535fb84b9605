"""The sandbox's Kubernetes: an API server emulator over real HTTPS plus a simulated cluster.

`KubeEmulator` is the sandbox daemon's service: `start()` returns the https endpoint, the CA
certificate that verifies it (see tls.py) and the access key the `kubernetes` client signs its EKS
tokens with (see eks_auth.py), `stop()` ends it. Nodes exist
only through nodegroups (`add_nodegroup` / `resize_nodegroup` / `remove_nodegroup`, called when the
sandbox's EKS nodegroups change). Hooks connect pods and Services to real local processes; see kubelet.py.

One idea per module. The API server: kinds (the resource types), errors, metadata, selectors,
store (objects, resourceVersions, watches), admission, patches, status (readiness, conditions),
api (the verbs around the store), routes (paths and discovery), rest (a request to an API call),
tables (kubectl get's columns), eks_auth, tls, http_server. The cluster: kubelet (pods and the
reconcile loop) with nodes, scheduler and controllers.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from radstream.kube.client import EKS_TOKEN_LIFETIME_SECONDS
from radstream.sandbox.kube.api import Api
from radstream.sandbox.kube.http_server import ApiHttpServer
from radstream.sandbox.kube.kubelet import Kubelet
from radstream.sandbox.kube.store import Store
from radstream.sandbox.kube.tls import ensure_ca, server_context

__all__ = ["KubeEmulator"]


class KubeEmulator:
    """API server + kubelet simulation on 127.0.0.1.

    kubelet_options go to Kubelet: region, readiness_hook, pod_start_hook, pod_stop_hook,
    load_balancer_hook, node_ready_delay, pod_start_delay, pod_ready_delay, load_balancer_delay,
    probe_period, system_pods.
    """

    def __init__(self, port: int = 0, token_seconds: float = EKS_TOKEN_LIFETIME_SECONDS,
                 ca_dir: Path | None = None, **kubelet_options: Any) -> None:
        """ca_dir: where the CA lives (the daemon keeps one per state dir); None: a throwaway one,
        removed by stop()."""
        # The one principal admitted; private, since knowing it is enough to make a token.
        self.access_key_id = "RSSANDBOX" + secrets.token_hex(16).upper()
        self.token_seconds = token_seconds
        self._own_ca_dir = ca_dir is None
        self.ca_dir = Path(tempfile.mkdtemp(prefix="radstream-kube-ca-")) if ca_dir is None else Path(ca_dir)
        self.store = Store()
        self.api = Api(self.store)
        self.kubelet = Kubelet(self.api, **kubelet_options)
        self._port = port
        self._http: ApiHttpServer | None = None

    @property
    def endpoint(self) -> str:
        if self._http is None:
            raise RuntimeError("the Kubernetes emulator is not started; call start() first")
        return self._http.url

    def start(self) -> dict[str, str]:
        ca_cert = ensure_ca(self.ca_dir)
        self._http = ApiHttpServer(self.api, self.access_key_id, server_context(self.ca_dir), self.token_seconds,
                                   port=self._port)
        self._http.start()
        self.kubelet.start()
        return {"kubernetes_endpoint": self.endpoint, "kubernetes_ca": str(ca_cert),
                "kubernetes_access_key_id": self.access_key_id}

    def stop(self) -> None:
        """Stop serving and simulating; safe to call twice."""
        self.kubelet.stop()
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._own_ca_dir:
            shutil.rmtree(self.ca_dir, ignore_errors=True)

    def add_nodegroup(self, name: str, instance_type: str, count: int, labels: dict[str, str] | None = None,
                      taints: list[dict[str, str]] | None = None, capacity_type: str = "ON_DEMAND") -> list[str]:
        return self.kubelet.add_nodegroup(name, instance_type, count, labels, taints, capacity_type)

    def resize_nodegroup(self, name: str, count: int) -> list[str]:
        return self.kubelet.resize_nodegroup(name, count)

    def remove_nodegroup(self, name: str) -> None:
        self.kubelet.remove_nodegroup(name)
