"""A real OCI registry on loopback: Debian's `docker-registry`, the reference implementation of the
distribution API that ECR also speaks, so the daemonless image builder pushes to it unchanged.

`RegistryServer` runs one process (config, storage and log under a directory of its own);
`SandboxRegistry` is the daemon's service: a fresh registry per sandbox start — stopping the sandbox
discards the emulated account, its images included — behind the ECR-like front (`ecr_front`), so
pushes meet ECR's answers to chunked uploads, and seeded through it with the small synthetic base
image the sandbox builds the serving image on. Without the Debian package the service is skipped
with a warning and sandbox.json says `registry: null`."""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from radstream.processes import free_port, stop_process
from radstream.sandbox.ecr_front import EcrFront

log = logging.getLogger(__name__)

INSTALL_HINT = "install docker-registry (apt-get install docker-registry)"


def registry_binary() -> str | None:
    """Debian installs the server as `docker-registry`; upstream builds call it `registry`."""
    return shutil.which("docker-registry") or shutil.which("registry")


class RegistryServer:
    """One registry process on 127.0.0.1:<free port>. `auth_config` is a YAML `auth:` block (or "")."""

    def __init__(self, root: Path, binary: str, auth_config: str = "", log_path: Path | None = None) -> None:
        self.root = Path(root)
        self.binary = binary
        self.auth_config = auth_config
        self.storage = self.root / "storage"
        self.log_path = log_path or self.root / "registry.log"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            # The secret signs upload-session state; a random one per process is all a single
            # instance needs (and keeps the registry from warning about a missing one).
            f"http:\n  addr: {self.host}\n  secret: {secrets.token_hex(16)}\n" + self.auth_config
        )
        with open(self.log_path, "ab") as log_file:
            # Same session as the caller: a sandbox daemon killed hard takes the registry with it.
            self.process = subprocess.Popen([self.binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                            stdout=log_file, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"docker-registry exited with code {self.process.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, and asking for credentials
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer on {self.url} within {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, then kill if it hangs; quiet when not running."""
        process, self.process = self.process, None
        stop_process(process, timeout)


class SandboxRegistry:
    """The daemon's registry service: publishes `registry` (the front's host:port) and `base_image`."""

    name = "registry"

    def __init__(self, root: Path, log_dir: Path) -> None:
        self.root = Path(root)
        self.logs = {"registry": str(Path(log_dir) / "registry.log")}
        self._server: RegistryServer | None = None
        self._front: EcrFront | None = None

    def start(self) -> dict[str, str]:
        from radstream.inference.oci import RegistryClient
        from radstream.sandbox.base_image import SANDBOX_BASE_REPOSITORY, SANDBOX_BASE_TAG, push_synthetic_base

        binary = registry_binary()
        if binary is None:
            log.warning("no OCI registry in the sandbox: docker-registry is not installed; %s", INSTALL_HINT)
            self.logs = {}
            return {}
        shutil.rmtree(self.root, ignore_errors=True)  # a new sandbox is a new, empty account
        self._server = RegistryServer(self.root, binary, log_path=Path(self.logs["registry"]))
        self._server.start()
        self._front = EcrFront(self._server.host)
        self._front.start()
        client = RegistryClient(self._front.host)
        try:
            push_synthetic_base(client, SANDBOX_BASE_REPOSITORY, SANDBOX_BASE_TAG)
        finally:
            client.close()
        base_image = f"{self._front.host}/{SANDBOX_BASE_REPOSITORY}:{SANDBOX_BASE_TAG}"
        log.info("registry serving on %s (ECR-like front of %s) with %s", self._front.url, self._server.url,
                 base_image)
        return {"registry": self._front.host, "base_image": base_image}

    def stop(self) -> None:
        if self._front is not None:
            self._front.stop()
        if self._server is not None:
            self._server.stop()
