"""What a Classic ELB's HTTPS listener does, done for real on loopback: Debian's nginx terminates
TLS with the certificate imported into the emulated ACM and proxies plain HTTP to the local Triton.

One nginx per load balancer, on 127.0.0.1:<free port>, with its config, certificate, key (mode
0600) and logs in a directory of its own. `master_process off` makes it a single process: stopping
it, or the daemon's SIGKILL of its whole session, leaves no worker behind. Started and stopped by
the cloud controller, inside the daemon; without the Debian package there is no TLS front and the
Service gets no load balancer address (the cloud controller logs why)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from radstream.private_file import write_private
from radstream.processes import free_port, stop_process

log = logging.getLogger(__name__)

INSTALL_HINT = "install nginx (apt-get install nginx)"
# Tensors are a few hundred KB; leave room for larger images and batches.
MAX_BODY = "64m"


def nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which a user's PATH may lack.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def config(directory: Path, port: int, upstream_port: int) -> str:
    temp = " ".join(f"{kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  {temp}
  client_max_body_size {MAX_BODY};
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {directory / "server.crt"};
    ssl_certificate_key {directory / "server.key"};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://127.0.0.1:{upstream_port};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}
}}
"""


class NginxFront:
    def __init__(self, directory: Path, binary: str, certificate: bytes, key: bytes, upstream_port: int) -> None:
        self.directory, self.binary, self.upstream_port = Path(directory), binary, upstream_port
        self.certificate, self.port = certificate, free_port()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        (self.directory / "server.crt").write_bytes(certificate)
        write_private(self.directory / "server.key", key)
        (self.directory / "nginx.conf").write_text(config(self.directory, self.port, upstream_port))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        with open(self.directory / "nginx.out", "ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf"),
                 "-e", str(self.directory / "error.log")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}; see {self.directory / 'error.log'}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        stop_process(self.process, timeout=5.0)
        self.process = None


class TlsFronts:
    """The TLS fronts of the sandbox's load balancers, by load balancer name."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._fronts: dict[str, NginxFront] = {}
        self._lock = threading.Lock()

    def ensure(self, name: str, certificate: bytes, key: bytes, upstream_port: int) -> int | None:
        """The local port terminating TLS for load balancer `name` with this certificate; a front
        with another certificate or upstream is replaced. None without nginx."""
        binary = nginx_binary()
        if binary is None:
            log.warning("no TLS front for load balancer %s: %s", name, INSTALL_HINT)
            return None
        with self._lock:
            front = self._fronts.get(name)
            if front is not None and front.certificate == certificate and front.upstream_port == upstream_port \
                    and front.process is not None and front.process.poll() is None:
                return front.port
            if front is not None:
                front.stop()
            front = NginxFront(self.directory / name, binary, certificate, key, upstream_port)
            front.start()
            self._fronts[name] = front
            log.info("TLS front for load balancer %s on 127.0.0.1:%d -> 127.0.0.1:%d", name, front.port, upstream_port)
            return front.port

    def remove(self, name: str) -> None:
        with self._lock:
            front = self._fronts.pop(name, None)
        if front is not None:
            front.stop()
            shutil.rmtree(front.directory, ignore_errors=True)

    def stop(self) -> None:
        for name in list(self._fronts):
            self.remove(name)
