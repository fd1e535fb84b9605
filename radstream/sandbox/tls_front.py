"""What a Classic ELB's HTTPS listener does, done for real on loopback: Debian's nginx terminates
TLS with the certificate imported into the emulated ACM and proxies plain HTTP to the local Triton.

One nginx per load balancer, on 127.0.0.1:<free port>, with its config, certificate, key (mode
0600) and logs in a directory of its own. `master_process off` makes it a single process: stopping
it, or the daemon's SIGKILL of its whole session, leaves no worker behind. Started and stopped by
the cloud controller, inside the daemon; without the Debian package there is no TLS front and the
Service gets no load balancer address (the cloud controller logs why).

The same front is an Application Load Balancer's door (radstream.sandbox.alb_controller): given a
WafPolicy (radstream.sandbox.waf_rules), nginx also enforces the ALB's web ACL with ModSecurity and
the OWASP Core Rule Set, and its rate-based rule with limit_req. ModSecurity's match messages quote
requests, whose bodies are patients' radiographs: such a front logs only critical errors."""

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
from radstream.sandbox.waf_rules import WafPolicy, engine_config, nginx_rate

log = logging.getLogger(__name__)

INSTALL_HINT = "install nginx (apt-get install nginx)"
WAF_INSTALL_HINT = "install ModSecurity for nginx (apt-get install libnginx-mod-http-modsecurity modsecurity-crs)"
MODSECURITY_MODULES = tuple(Path(d) / "ngx_http_modsecurity_module.so"
                            for d in ("/usr/lib/nginx/modules", "/usr/lib64/nginx/modules", "/usr/share/nginx/modules"))
# Typical tensors stay in memory rather than in client_body_temp, where a radiograph would touch disk.
WAF_BODY_BUFFER = "1m"
# Tensors are a few hundred KB; leave room for larger images and batches.
MAX_BODY = "64m"


def nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which a user's PATH may lack.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def modsecurity_module() -> Path | None:
    return next((path for path in MODSECURITY_MODULES if path.is_file()), None)


def missing_waf_software() -> str | None:
    """Why a front cannot enforce a web ACL here, if it cannot."""
    from radstream.sandbox.waf_rules import CRS_RULES

    return None if modsecurity_module() is not None and CRS_RULES.is_dir() else WAF_INSTALL_HINT


def config(directory: Path, port: int, upstream_port: int, waf: WafPolicy | None = None) -> str:
    temp = " ".join(f"{kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main, http, server, location = "", "", "", ""
    if waf is not None:
        main = f"load_module {modsecurity_module()};\n"
        http = f"client_body_buffer_size {WAF_BODY_BUFFER};\n  "
        # nginx refuses (400) a path climbing above the root before ModSecurity sees it; behind AWS
        # WAF it reaches the web ACL, which blocks it (403). Such a request has no $request_uri, only
        # its request line.
        server = f"""modsecurity on;
    modsecurity_rules_file {directory / "modsecurity.conf"};
    error_page 400 /.refused;
    location = /.refused {{
      internal;
      modsecurity off;
      if ($request ~* "(?:\\.|%2e){{2}}") {{ return 403; }}
      return 400;
    }}
    """
        if waf.rate_limit is not None:
            http += f"limit_req_zone $binary_remote_addr zone=waf_rate:1m rate={nginx_rate(*waf.rate_limit)};\n  "
            location = f"""limit_req zone=waf_rate burst={waf.rate_limit[0]} nodelay;
      limit_req_status {waf.rate_limit_status};
      """
    return f"""{main}daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} {"warn" if waf is None else "crit"};
events {{ worker_connections 256; }}
http {{
  access_log off;
  {temp}
  client_max_body_size {MAX_BODY};
  {http}server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {directory / "server.crt"};
    ssl_certificate_key {directory / "server.key"};
    ssl_protocols TLSv1.2 TLSv1.3;
    {server}location / {{
      {location}proxy_pass http://127.0.0.1:{upstream_port};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}
}}
"""


class NginxFront:
    def __init__(self, directory: Path, binary: str, certificate: bytes, key: bytes, upstream_port: int,
                 waf: WafPolicy | None = None) -> None:
        self.directory, self.binary, self.upstream_port = Path(directory), binary, upstream_port
        self.certificate, self.waf, self.port = certificate, waf, free_port()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        (self.directory / "server.crt").write_bytes(certificate)
        write_private(self.directory / "server.key", key)
        if waf is not None:
            for kind in ("modsecurity-tmp", "modsecurity-data"):
                (self.directory / kind).mkdir(exist_ok=True, mode=0o700)
            (self.directory / "modsecurity.conf").write_text(engine_config(self.directory) + waf.modsecurity)
        (self.directory / "nginx.conf").write_text(config(self.directory, self.port, upstream_port, waf))
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

    def ensure(self, name: str, certificate: bytes, key: bytes, upstream_port: int,
               waf: WafPolicy | None = None) -> int | None:
        """The local port terminating TLS for load balancer `name` with this certificate (and
        enforcing `waf`, if given); a front with another certificate, upstream or policy is
        replaced. None without nginx, or without ModSecurity when a policy is given."""
        binary = nginx_binary()
        missing = INSTALL_HINT if binary is None else missing_waf_software() if waf is not None else None
        if binary is None or missing is not None:
            log.warning("no TLS front for load balancer %s: %s", name, missing)
            return None
        with self._lock:
            front = self._fronts.get(name)
            if front is not None and front.certificate == certificate and front.upstream_port == upstream_port \
                    and front.waf == waf and front.process is not None and front.process.poll() is None:
                return front.port
            if front is not None:
                front.stop()
            front = NginxFront(self.directory / name, binary, certificate, key, upstream_port, waf)
            front.start()
            self._fronts[name] = front
            log.info("TLS front for load balancer %s on 127.0.0.1:%d -> 127.0.0.1:%d%s", name, front.port, upstream_port,
                     "" if waf is None else " with its web ACL")
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
