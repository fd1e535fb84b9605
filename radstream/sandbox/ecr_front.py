"""An ECR-like front for the sandbox's registry: a small threaded reverse proxy on 127.0.0.1 in
front of Debian's docker-registry that answers chunked blob uploads the way ECR does, so a client
that only works with the reference registry fails here as it would on AWS:

- a chunk PATCH answers 201 Created (the distribution spec says 202);
- its Range header keeps reporting the first chunk's range for the rest of the upload session;
- a chunk that does not start where the received bytes end answers 416 (so does the spec; the
  registry behind would append it);
- a closing `PUT ?digest=` with an empty body after several chunks answers 500 (after one chunk it
  works: that is how docker pushes, one streamed PATCH then an empty PUT).

Everything else (auth challenges, mounts, manifests, blobs) passes through unchanged. The Host
header is forwarded as sent, so the registry's Location URLs point back at the front."""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Hop-by-hop headers, and the body's framing, which the front sets itself: never forwarded.
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                  "transfer-encoding", "upgrade", "expect", "content-length"}
_OWN_HEADERS = {"date", "server"}  # send_response writes its own
_UPLOAD_PATH = re.compile(r"^/v2/.+/blobs/uploads/(?P<session>[^/]+)$")
_COPY_BLOCK = 1024 * 1024


@dataclass
class _Upload:
    """What the front remembers of one upload session."""

    received: int = 0  # bytes its chunks brought
    chunks: int = 0
    first_range: str = ""  # the Range answered after the first chunk, and ever after


class _Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}

    def get(self, session: str) -> _Upload:
        with self._lock:
            return replace(self._uploads.get(session, _Upload()))

    def chunked(self, session: str, size: int) -> _Upload:
        with self._lock:
            upload = self._uploads.setdefault(session, _Upload())
            upload.received += size
            upload.chunks += 1
            if not upload.first_range and upload.received:
                upload.first_range = f"0-{upload.received - 1}"
            return replace(upload)

    def forget(self, session: str) -> None:
        with self._lock:
            self._uploads.pop(session, None)


class EcrFront:
    """The proxy: `host`/`url` are what clients use; `backend` is the registry's host:port."""

    def __init__(self, backend: str, timeout: float = 120.0) -> None:
        self.backend = backend
        self.timeout = timeout
        self.sessions = _Sessions()
        self._server = _Server(self)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="ecr-front", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Quiet when not running."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            thread.join()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, front: EcrFront) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.front = front


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection for a whole push
    server: _Server

    def _proxy(self) -> None:
        sessions = self.server.front.sessions
        body = self._read_body()
        url = urlsplit(self.path)
        upload = _UPLOAD_PATH.match(url.path)
        session = upload.group("session") if upload else None
        closing = session is not None and self.command == "PUT" and "digest" in parse_qs(url.query)
        refusal = self._refusal(sessions.get(session), body, closing) if session is not None else None
        if refusal:
            self._answer(*refusal)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
        connection = http.client.HTTPConnection(self.server.front.backend, timeout=self.server.front.timeout)
        try:
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
            except OSError as error:  # the registry is gone: say so rather than drop the connection
                self._answer(502, "UNAVAILABLE", f"the registry behind the front failed: {error}")
                return
            status = response.status
            reply = [(k, v) for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED | _OWN_HEADERS]
            if session is not None and self.command == "PATCH" and 200 <= status < 300:
                pinned = sessions.chunked(session, len(body or b"")).first_range
                status = 201
                reply = [(k, pinned if k.lower() == "range" and pinned else v) for k, v in reply]
            elif session is not None and ((closing and status == 201) or self.command == "DELETE"):
                sessions.forget(session)
            self._relay(status, reply, response)
        finally:
            connection.close()

    def _refusal(self, upload: _Upload, body: bytes | None, closing: bool) -> tuple[int, str, str] | None:
        """ECR's refusals the registry behind does not make: a chunk that does not start where the
        received bytes end (the registry would append it anyway), an empty close after chunks."""
        if self.command == "PATCH":
            start = re.match(r"^(?:bytes )?(\d+)-", self.headers.get("Content-Range", ""))
            if start and int(start.group(1)) != upload.received:
                return (416, "BLOB_UPLOAD_INVALID",
                        f"the chunk starts at {start.group(1)} but {upload.received} bytes were received")
        if closing and not body and upload.chunks > 1:
            return 500, "UNKNOWN", "an empty closing PUT after chunks fails on ECR; send the last chunk in the PUT"
        return None

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy  # http.server dispatches on do_<METHOD>

    def _read_body(self) -> bytes | None:
        # Buffered: RegistryClient sends at most one chunk (32 MiB) per request, and sandbox blobs are small.
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        return b"" if self.command in ("POST", "PUT", "PATCH") else None

    def _relay(self, status: int, headers: list[tuple[str, str]], response: http.client.HTTPResponse) -> None:
        length = response.getheader("Content-Length")
        if self.command == "HEAD" or status in (204, 304) or length is not None:
            self._head(status, headers + ([("Content-Length", length)] if length is not None else []))
            if self.command != "HEAD":
                while block := response.read(_COPY_BLOCK):
                    self.wfile.write(block)
            return
        payload = response.read()
        self._head(status, [*headers, ("Content-Length", str(len(payload)))])
        self.wfile.write(payload)

    def _answer(self, status: int, code: str, message: str) -> None:
        payload = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._head(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        self.wfile.write(payload)

    def _head(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # the registry's own log is enough


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    parts = []
    while size := int(stream.readline().split(b";")[0], 16):
        parts.append(stream.read(size))
        stream.readline()
    while stream.readline() not in (b"\r\n", b"\n", b""):
        pass  # trailers
    return b"".join(parts)
