"""A local stand-in for AWS that refuses everything, quickly: the CLI can be run against the `aws`
target without an account, and a test sees every request it made.

EKS DescribeCluster answers 404 (no cluster yet, so phase 0's check before changing anything passes);
every other call 403 AccessDenied naming its action, in the query protocol's XML (STS, IAM)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

# What the fake credentials must never be found next to: logs, stderr.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE1234", "AWS_SECRET_ACCESS_KEY": "fake-secret-0123456789-abcdefghij",
               "AWS_SESSION_TOKEN": "fake-session-token-ZYXWVUTSRQPONMLKJIHG"}


class FakeAws:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None: ...

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.requests.append((self.command, self.path))
                if self.path.startswith("/clusters/"):
                    self._send(404, b'{"message": "No cluster found"}', "application/json",
                               {"x-amzn-ErrorType": "ResourceNotFoundException"})
                    return
                action = (parse_qs(body).get("Action") or ["Unknown"])[0]
                message = (f"User: arn:aws:iam::123456789012:user/op is not authorized to perform: "
                           f"sts:{action} on resource: *")
                self._send(403, (f"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                                 f"<Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>").encode(),
                           "text/xml", {})

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAws:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
