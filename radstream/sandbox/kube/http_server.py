"""The emulator's HTTPS front: `ApiHttpServer` serves `Api` on loopback over TLS, refuses what has no
admitted EKS token with 401, and answers with the content types and Status errors the official
`kubernetes` client and kubectl expect."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from radstream.kube.client import EKS_TOKEN_LIFETIME_SECONDS
from radstream.sandbox.kube.api import Api
from radstream.sandbox.kube.eks_auth import token_problem
from radstream.sandbox.kube.errors import ApiError
from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.rest import handle

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 10.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def handle(self) -> None:
        self.request.settimeout(HANDSHAKE_SECONDS)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as error:
            # A plain-HTTP client, or one that does not trust the CA: there is no request to answer.
            log.info("TLS handshake with %s failed: %s", self.client_address[0], error)
            return
        self.request.settimeout(None)  # watches and idle keep-alive connections wait as long as they like
        super().handle()

    def _send(self, code: int, document: Obj | bytes) -> None:
        text = isinstance(document, bytes)
        payload = document if text else json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, lines: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in lines:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            refused = self.server.refusal(self.headers.get("Authorization") or "")
            if refused:
                # Like EKS: the client is told only "Unauthorized"; the reason goes to the log.
                log.info("refused %s %s: %s", self.command, url.path, refused)
                raise ApiError(401, "Unauthorized", "Unauthorized")
            code, result = handle(self.server.api, self.command, url.path, query,
                                  self.headers.get("Content-Type") or "application/json", body,
                                  self.headers.get("Accept") or "application/json")
        except ApiError as error:
            self._send(error.code, error.status())
            return
        except Exception as error:  # a bug in the emulator must still answer like an API server
            log.exception("kube emulator failed on %s %s", self.command, self.path)
            self._send(500, ApiError(500, "InternalError", f"internal error: {error!r}").status())
            return
        if isinstance(result, (dict, bytes)):
            self._send(code, result)
        else:
            self._stream(result)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class ApiHttpServer(ThreadingHTTPServer):
    """The emulator's HTTPS front: 127.0.0.1 on a free port, TLS with `tls` (see tls.py), an EKS
    bearer token (see eks_auth) required on every path."""

    daemon_threads = True

    def __init__(self, api: Api, access_key_id: str, tls: ssl.SSLContext,
                 token_seconds: float = EKS_TOKEN_LIFETIME_SECONDS, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.api, self._access_key_id, self._token_seconds = api, access_key_id, token_seconds
        self._tls = tls
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[ssl.SSLSocket, Any]:
        # The handshake happens on the connection's own thread (see _Handler.handle): one slow or
        # plain-HTTP client must not hold up the accept loop.
        sock, address = super().get_request()
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"https://{host}:{port}"

    def refusal(self, header: str) -> str | None:
        """Why a request with this Authorization header is refused (None: it is not)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return "no bearer token"
        return token_problem(token.strip(), access_key_id=self._access_key_id, lifetime=self._token_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="kube-emulator-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.api.store.close()  # ends open watches so their threads return
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)
