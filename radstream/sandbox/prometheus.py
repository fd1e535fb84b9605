"""A real Prometheus on loopback (Debian's `prometheus`) scraping the local Triton's metrics
endpoint, as the PodMonitor in manifests/prometheus/ makes an operator's Prometheus scrape Triton's
pods. The daemon's service publishes `prometheus` (its URL); `radstream watch` reads Triton's queue
and compute time from it. Without the package the service is skipped with a warning and
sandbox.json says `prometheus: null`."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from radstream.processes import free_port, stop_process

log = logging.getLogger(__name__)

INSTALL_HINT = "install prometheus (apt-get install --no-install-recommends prometheus)"
# Shorter than the PodMonitor's 15 s: a sandbox run lasts minutes, and `watch` should move with it.
SCRAPE_INTERVAL = "5s"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (shutil.which("prometheus", path="/usr/bin:/usr/sbin") or None)


def scrape_config(triton_metrics_url: str) -> dict:
    """One job, `triton`, on the metrics endpoint; labelled like the PodMonitor's targets."""
    parts = urlsplit(triton_metrics_url)
    return {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": "triton", "metrics_path": parts.path or "/metrics",
                                "static_configs": [{"targets": [parts.netloc],
                                                    "labels": {"app_kubernetes_io_name": "triton"}}]}]}


class SandboxPrometheus:
    """The daemon's Prometheus service; reads `triton_metrics` from the services started before it."""

    name = "prometheus"

    def __init__(self, root: Path, log_dir: Path, published: Mapping[str, str]) -> None:
        self.root, self.published = Path(root), published
        self.log_path = Path(log_dir) / "prometheus.log"
        self.logs: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> dict[str, str]:
        binary, target = prometheus_binary(), self.published.get("triton_metrics")
        if binary is None or not target:
            log.warning("no Prometheus in the sandbox: %s", INSTALL_HINT if binary is None else "the local Triton is not running")
            return {}
        shutil.rmtree(self.root, ignore_errors=True)  # a new sandbox starts with no history
        self.root.mkdir(parents=True)
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(target), indent=2))  # YAML is a superset of JSON
        address = f"127.0.0.1:{free_port()}"
        with open(self.log_path, "ab") as log_file:
            # Same session as the daemon: a daemon killed hard takes Prometheus with it.
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
                 f"--web.listen-address={address}", "--storage.tsdb.retention.time=1d"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
        url = f"http://{address}"
        try:
            self._wait_ready(url, timeout)
        except BaseException:
            self.stop()
            raise
        self.logs = {"prometheus": str(self.log_path)}
        log.info("Prometheus on %s scraping %s every %s", url, target, SCRAPE_INTERVAL)
        return {"prometheus": url}

    def _wait_ready(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with code {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus did not become ready on {url} within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, 10.0)
